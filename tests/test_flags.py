"""Every flag is checked before any work: the parser walk over each numeric flag of each script, sizes the
networks cannot take (padded or refused), and checkpoints or annotations that do not fit refused before an
output folder exists."""
import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest
import torch

import demo
import genPseudoMasks
import main as train_backbone
import run_rounds
import test as test_backbone
import trainLPG
from benchmarks import real_photos
from models import DeepLabLargeFOV, LPGNet
from tests.conftest import cli
from tests.faults import CPU, generation_flags, pngs
from utils import make_voc_aug, parseCOCO
from utils.engine.checkpoint import save_checkpoint
from utils.engine.flags import Number, NumberList
from utils.engine.runtime import run_script
from utils.pseudo_masks.methods import mask_dir

# Each script with a command line that its parser and its flag checks accept; OUT is replaced by a folder that
# must still not exist after any refusal.
SCRIPTS = {
    'main.py': (train_backbone, ['--label_path_name', 'masks', '--save_path', 'OUT', '--from_scratch']),
    'trainLPG.py': (trainLPG, ['--coco_root_dir', 'coco', '--round', '1', '--model_save_path', 'OUT']),
    'genPseudoMasks.py': (genPseudoMasks, ['--voc_root_dir', 'voc', '--voc_proposals_dir', 'OUT',
                                           '--model_path_test', 'lpg.pth']),
    'test.py': (test_backbone, ['--type', 'test', '--model_path', 'model.pth', '--save_path', 'OUT']),
    'run_rounds.py': (run_rounds, ['--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', 'OUT',
                                   '--from_scratch']),
    'demo.py': (demo, ['--out_dir', 'OUT']),
    'utils/parseCOCO.py': (parseCOCO, ['--dataRoot', 'OUT']),
    'utils/make_voc_aug.py': (make_voc_aug, ['--sbd_root', 'sbd', '--voc_root', 'OUT']),
    'benchmarks/real_photos.py': (real_photos, ['--aux', 'aux', '--target', 'target', '--out', 'OUT']),
}
VALUES = ['0', '-1', '320', '1000000000', '1e9', 'nan', 'inf', '0.1', 'x']


class _WouldStartWork(Exception):
    """Raised in place of a script's work, once its flags are parsed and checked."""


def parse_and_check(module, argv, monkeypatch):
    """The script's command line, parsed and flag-checked as run_script does it, stopped before any work. Returns
    (exit status or None where it would start working, what it wrote to stderr)."""
    def checks_only(args):
        check = getattr(module, 'check_flags', None)
        if check is not None:
            check(args)
        raise _WouldStartWork

    monkeypatch.setattr('sys.argv', [module.__name__] + argv)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            run_script(checks_only, module.get_args_parser())
        except SystemExit as exit_:
            return exit_.code, stderr.getvalue()
        except _WouldStartWork:
            return None, stderr.getvalue()
    raise AssertionError('run_script returned without working')


def numeric_flags(parser):
    """(the flag, its type) of every flag that takes a number."""
    return [(action.option_strings[-1], action.type) for action in parser._actions if action.option_strings
            and (action.type in (int, float) or isinstance(action.type, (Number, NumberList)))]


@pytest.mark.parametrize('script', list(SCRIPTS))
def test_every_numeric_flag_is_refused_in_one_line_or_taken_as_its_help_says(script, tmp_path, monkeypatch):
    module, base = SCRIPTS[script]
    out = tmp_path / 'out'
    base = [str(out) if flag == 'OUT' else flag for flag in base]
    monkeypatch.chdir(tmp_path)
    parser = module.get_args_parser()
    assert parse_and_check(module, base, monkeypatch)[0] is None, f'{script}: the base command is refused'
    help_text = ' '.join(parser.format_help().split())
    for flag, kind in numeric_flags(parser):
        # Every numeric flag declares the values it takes, and its help says which.
        assert isinstance(kind, (Number, NumberList)), f'{script} {flag}: a bare {kind.__name__} says no range'
        assert ' '.join(kind.describe().split()) in help_text, f'{script} {flag}: its help does not give its range'
        for value in VALUES:
            status, said = parse_and_check(module, base + [flag, value], monkeypatch)
            assert 'Traceback' not in said
            if status is None:  # taken: within the range the help gives
                parsed = kind(value)
                assert all(kind.number.accepts(v) for v in parsed) if isinstance(kind, NumberList) \
                    else kind.accepts(parsed), f'{script} {flag} {value}'
            else:
                lines = said.strip().splitlines()
                assert status == 2 and len(lines) == 1 and flag in lines[0], f'{script} {flag} {value}: {said}'
                assert value in lines[0] or repr(value) in lines[0]
            assert not out.exists(), f'{script} {flag} {value} created its output folder'


@pytest.mark.parametrize('script, argv, refused', [
    ('trainLPG.py', ['--crop_size', '320'], 'a multiple of 128 from 128 to 8192'),
    ('run_rounds.py', ['--lpg_crop_size', '200'], 'a multiple of 128'),
    ('main.py', ['--crop_size', '8'], 'from 16 to 8192'),
    ('test.py', ['--scales', '0.75,1.25'], 'does not hold 1'),
    ('test.py', ['--scales', '0.1,1'], 'from 0.25 to 4'),
    ('trainLPG.py', ['--batch_size', '1'], 'from 2 to 4096'),
    ('genPseudoMasks.py', ['--max_side', '16'], 'from 32 to 8192'),
    ('genPseudoMasks.py', ['--method', 'sam', '--max_side', '512'], 'does not apply to --method sam'),
    ('test.py', ['--type', 'masks'], '--type masks needs --pred_dir'),
])
def test_sizes_the_networks_cannot_take_are_refused_naming_what_works(script, argv, refused, tmp_path, monkeypatch):
    module, base = SCRIPTS[script]
    monkeypatch.chdir(tmp_path)
    status, said = parse_and_check(module, [str(tmp_path / 'out') if f == 'OUT' else f for f in base] + argv,
                                   monkeypatch)
    assert status == 2 and refused in said and len(said.strip().splitlines()) == 1, said
    assert not (tmp_path / 'out').exists()


def test_a_test_size_the_generator_cannot_read_pads_as_the_next_multiple_of_128(data, lpg_path, tmp_path,
                                                                                monkeypatch, capsys):
    """--voc_test_size 320 (real photographs with a longest side of 320): padded to 384, said once, and the masks
    are those of --voc_test_size 384."""
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'a', '--voc_test_size', 320),
               monkeypatch=monkeypatch)[0] == 0
    said = capsys.readouterr().out
    assert said.count('padded to 384') == 1, said
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'b', '--voc_test_size', 384),
               monkeypatch=monkeypatch)[0] == 0
    at_320 = pngs(mask_dir(str(tmp_path / 'a'), 'lpg', 'vgg16', 1))
    at_384 = pngs(mask_dir(str(tmp_path / 'b'), 'lpg', 'vgg16', 1))
    assert at_320 and at_320.keys() == at_384.keys()
    assert all(np.array_equal(at_320[name], at_384[name]) for name in at_320)


def five_channel_generator(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / 'LPG_Round2.pth', **LPGNet(in_channels=5).state_dict())


def test_a_generator_of_another_shape_is_refused_before_the_output_folder_exists(data, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    status, said = cli(genPseudoMasks, *generation_flags(data, five_channel_generator(tmp_path), out),
                       monkeypatch=monkeypatch)
    assert status == 1 and 'LPG_Round2.pth' in said and 'does not hold the weights' in said, said
    assert not out.exists()


def test_a_training_start_of_another_shape_is_refused_before_anything_is_written(data, tmp_path, monkeypatch):
    """trainLPG.py (the generator to start from) and main.py (the backbone's initial weights): no run folder."""
    out = tmp_path / 'lpg'
    status, said = cli(trainLPG, '--coco_root_dir', data['coco'], '--round', 1, '--model_save_path', out,
                       '--init_lpg_model_path', five_channel_generator(tmp_path), '--crop_size', 128, *CPU,
                       monkeypatch=monkeypatch)
    assert status == 1 and 'cannot initialise LPGNet(in_channels=4)' in said, said
    assert not out.exists()
    coco_backbone = save_checkpoint(tmp_path / 'coco60.pth', **DeepLabLargeFOV(num_classes=61).state_dict())
    status, said = cli(train_backbone, '--root_path', data['voc'], '--label_path_name', 'SegmentationClassAug',
                       '--save_path', tmp_path / 'backbone', '--init_model_path', coco_backbone, *CPU,
                       monkeypatch=monkeypatch)
    assert status == 1 and 'does not hold the weights of vgg16 with 21 classes' in said, said
    assert not (tmp_path / 'backbone').exists()
    status, said = cli(test_backbone, '--root_path', data['voc'], '--model_path', coco_backbone, '--save_path',
                       tmp_path / 'eval', *CPU, monkeypatch=monkeypatch)
    assert status == 1 and 'does not hold the weights of vgg16 backbone (21 classes)' in said, said
    assert not (tmp_path / 'eval').exists()


def test_a_custom_annotation_file_without_boxes_is_refused_before_the_output_folder_exists(tmp_path, monkeypatch):
    images = tmp_path / 'images'
    images.mkdir()
    from PIL import Image
    Image.new('RGB', (16, 16)).save(images / 'a.jpg')
    annotations = tmp_path / 'target.json'
    annotations.write_text(json.dumps({
        'images': [{'id': 1, 'file_name': 'a.jpg', 'height': 16, 'width': 16}],
        'categories': [{'id': 1, 'name': 'quasar'}],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'iscrowd': 0}]}))
    out = tmp_path / 'out'
    status, said = cli(genPseudoMasks, '--dataset', 'custom', '--annotations', annotations, '--image_dir', images,
                       '--custom_proposals_dir', out, '--method', 'box', *CPU, monkeypatch=monkeypatch)
    assert status == 1 and 'target.json' in said and 'bbox' in said, said
    assert not out.exists()


def test_a_refusal_on_rerun_leaves_the_earlier_masks_as_they_were(data, lpg_path, tmp_path, monkeypatch):
    flags = generation_flags(data, lpg_path, tmp_path / 'out')
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    folder = mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1)
    before = {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)}
    shutil.copy(five_channel_generator(tmp_path), lpg_path)  # the same path, now a checkpoint of another shape
    assert cli(genPseudoMasks, *flags, '--overwrite', monkeypatch=monkeypatch)[0] == 1
    assert {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)} == before
