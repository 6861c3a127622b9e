"""Completion records cannot drift: every flag of a script that writes a record is declared once, either as
shaping its outputs (OUTPUT_FLAGS: the record holds it, and a rerun with another value is refused) or as
changing only how the run goes (RUNTIME_FLAGS). A new flag fails here until it is classified."""
import argparse

import pytest

import genPseudoMasks
import main as train_backbone
import test as test_backbone
import trainLPG
from utils.engine.records import settings_of

SCRIPTS = {'main.py': train_backbone, 'trainLPG.py': trainLPG, 'genPseudoMasks.py': genPseudoMasks,
           'test.py': test_backbone}


def flags_of(parser):
    return {action.dest for action in parser._actions if action.dest != argparse.SUPPRESS and action.dest != 'help'}


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_flag_is_declared_output_shaping_or_runtime_only(script):
    module = SCRIPTS[script]
    flags = flags_of(module.get_args_parser())
    both = module.OUTPUT_FLAGS & module.RUNTIME_FLAGS
    assert not both, f'{script}: {sorted(both)} declared both output-shaping and runtime-only'
    unclassified = flags - module.OUTPUT_FLAGS - module.RUNTIME_FLAGS
    assert not unclassified, f'{script}: classify {sorted(unclassified)} in OUTPUT_FLAGS or RUNTIME_FLAGS'
    unknown = (module.OUTPUT_FLAGS | module.RUNTIME_FLAGS) - flags
    assert not unknown, f'{script}: {sorted(unknown)} are declared but are not flags'


def test_a_record_holds_the_output_flags_only():
    args = train_backbone.get_args_parser().parse_args(['--label_path_name', 'masks', '--save_path', 'out',
                                                       '--workers', '7', '--lr', '0.5'])
    settings = settings_of(args, train_backbone.OUTPUT_FLAGS)
    assert set(settings) == train_backbone.OUTPUT_FLAGS and settings['lr'] == 0.5 and 'workers' not in settings


def test_resolving_defaults_returns_a_copy_and_leaves_the_callers_args_alone():
    """run_rounds.py asks each script's completion with the flags it parsed: resolving defaults may not change them."""
    cases = [(train_backbone.fill_schedule_defaults, train_backbone, ['--label_path_name', 'm', '--save_path', 'o'],
              'lr'),
             (trainLPG.resolved_source, trainLPG, ['--dataset', 'custom', '--annotations', 'a.json', '--image_dir',
                                                   'images'], 'labels_dir'),
             (test_backbone.resolve_defaults, test_backbone, ['--type', 'test'], 'test_size')]
    for resolve, module, argv, key in cases:
        args = module.get_args_parser().parse_args(argv)
        given = dict(vars(args))
        resolved = resolve(args)
        assert vars(args) == given and getattr(args, key) is None and getattr(resolved, key) is not None


def test_command_line_round_trips_through_the_parser_and_refuses_unknown_settings():
    """run_rounds.py and demo.py build every step's argv with the command line of the script's registered step."""
    import run_rounds
    argv = test_backbone.STEP.command_line(type='masks', pred_dir=['a', 'b'], overlays=True, crf=False, split=None,
                                      cuda=False)
    assert argv == ['--type', 'masks', '--pred_dir', 'a', 'b', '--overlays', '--cuda', 'False']
    args = test_backbone.get_args_parser().parse_args(argv)
    assert args.pred_dir == ['a', 'b'] and args.overlays and not args.crf and args.cuda is False
    assert trainLPG.STEP.command_line(crop_size=128) == ['--crop_size', '128']  # the flag named after the setting
    assert run_rounds.get_args_parser().parse_args(run_rounds.command_line(
        voc_root_dir='v', coco_root_dir='c', work_dir='w', baselines=['box', 'crf'])).baselines == ['box', 'crf']
    with pytest.raises(KeyError, match="no flag for the setting 'learning_rate'"):
        train_backbone.STEP.command_line(learning_rate=1e-3)
