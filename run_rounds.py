r"""Run rounds 1..N of the LPG alternation on a VOC root and a COCO root.

    python run_rounds.py --voc_root_dir VOC2012 --coco_root_dir COCO --work_dir runs/lpg --rounds 3 \
        --voc_imagenet_init PretrainedModel/vgg16_largefov_imagenet.pth \
        --coco_imagenet_init PretrainedModel/vgg16_largefov_imagenet_61.pth

Each step runs the published script in a subprocess, its output in <work_dir>/logs/<step>.log, and is skipped
when the script's completion record says the same settings and inputs already produced its outputs, so an
interrupted run continues where it stopped (the training steps resume from their last checkpoint, generation
skips the masks already written).
Round r: train LPG-r on COCO-60 (reading the round r-1 COCO-60 backbone when r >= 2); VOC pseudo masks with
LPG-r (and the round r-1 VOC backbone); score them; train and evaluate the round-r VOC backbone; unless r is
the last round, COCO-60 pseudo masks and the round-r COCO-60 backbone that the next round reads.
Layout under --work_dir (utils/engine/layout.py, RunLayout): lpg/Round_r/LPG_Round<r>.pth,
pseudo_voc/<model_type>_Round<r>/, pseudo_coco/<model_type>_Round<r>/, backbone_voc/Round_r/,
backbone_coco/Round_r/, summary.json.
--compare_backbones also trains the VOC backbone on each baseline's masks and on the ground truth
(backbone_voc/<method>/, backbone_voc/ground_truth/); --uniform_ablation also trains each round >= 2 generator
with uniform probabilities in place of the backbone's (lpg_uniform/, pseudo_voc/<model_type>_Round<r>_uniform/).

On several GPUs every step that runs a network (trainLPG.py, genPseudoMasks.py with the generator, main.py,
test.py --type test/crf, and the sam baseline) runs under torchrun; parsing COCO, the other baselines and the
scoring run as they are:
    python run_rounds.py ... --nproc_per_node 8                      # one node, 8 GPUs
    python run_rounds.py ... --launcher "torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \
        --rdzv_endpoint FIRST_NODE:29500 --rdzv_id lpg"               # on every node, one shared --work_dir
"""
import argparse
import os
import shlex

# The scripts whose steps run_rounds.py runs: importing them registers each one's ScriptStep (utils/engine/steps.py).
import genPseudoMasks  # noqa: F401
import main as train_backbone  # noqa: F401
import test as test_backbone  # noqa: F401
import trainLPG  # noqa: F401
import utils.parseCOCO  # noqa: F401
from datasets.boxes import LPG_CROP
from datasets.voc import resolve_voc_root
from models.backbones import SCRATCH_INITS, backbone_names
from utils.engine import runtime
from utils.engine.errors import FlagError, MissingFile
from utils.engine.files import write_json
from utils.engine.flags import (
    BACKBONE_CROP,
    BATCH,
    ITERATIONS,
    JOBS,
    MAX_BATCH,
    POSITIVE,
    TEST_SIZE,
    WORKERS,
    ScriptParser,
    count,
    per_round,
)
from utils.engine.layout import RunLayout
from utils.engine.precision import AMP_CHOICES
from utils.engine.runtime import comma_list, run_script, str2bool, with_values
from utils.parseCOCO import instances_path
from utils.pseudo_masks.methods import BOX, add_method_args, baseline_files, baseline_methods, get_method, name_list
from utils.rounds import run_baseline, run_round, voc_backbone
from utils.step_runner import Runner

GROUND_TRUTH = 'ground_truth'  # the backbone_voc/ folder of the fully supervised upper bound
# Flags renamed so that they cannot be taken for the release's --init_<dataset>_model_path (the round R-1 backbone
# that genPseudoMasks.py reads): the old name is refused, naming the new one.
RENAMED = {'voc_init_model_path': 'voc_imagenet_init', 'coco_init_model_path': 'coco_imagenet_init'}


class Renamed(argparse.Action):
    """A flag that was renamed: refused in one line (exit status 2) naming the new one."""

    def __init__(self, option_strings, dest, new, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f'{option_string} is now --{self.new} (the initial weights of every round\'s backbone), so that '
                     'it cannot be taken for genPseudoMasks.py\'s --init_<dataset>_model_path (the round R-1 backbone)')


def get_args_parser():
    parser = ScriptParser(__doc__)
    add_input_args(parser)
    add_experiment_args(parser)
    add_scaled_down_args(parser)
    add_process_args(parser)
    return parser


def add_input_args(parser):
    """The two datasets, the work folder, the number of rounds, the backbones and their initial weights."""
    parser.add_argument('--voc_root_dir', required=True)
    parser.add_argument('--coco_root_dir', required=True)
    parser.add_argument('--work_dir', required=True)
    parser.add_argument('--rounds', type=count(1), default=3)
    parser.add_argument('--model_type', choices=backbone_names(), default='vgg16', help='the VOC backbone')
    parser.add_argument('--coco_model_type', choices=backbone_names(), default='vgg16',
                        help='the COCO-60 backbone that the round-2+ generators read: VGG16 in the release on both '
                        'tracks, so one LPG_Round2/3 serves the VGG16 and the ResNet-101 experiments')
    parser.add_argument('--voc_imagenet_init', help='initial weights of the VOC backbones of every round (the '
                        'ImageNet initialisation, utils/imagenet_init.py; main.py --init_model_path)')
    parser.add_argument('--coco_imagenet_init', help='initial weights of the COCO-60 backbones of every round (the '
                        'ImageNet initialisation with 61 classes)')
    for old, new in RENAMED.items():
        parser.add_argument(f'--{old}', action=Renamed, new=new, help=argparse.SUPPRESS)


def add_experiment_args(parser):
    """What the run makes beside the rounds (baselines, comparisons, the ablation), on which splits, and how it
    treats earlier outputs."""
    parser.add_argument('--overwrite', action='store_true',
                        help='redo the steps whose outputs were made from other settings or inputs (passed on to '
                        'every step; a training run with the same inputs still resumes)')
    parser.add_argument('--from_scratch', nargs='?', const='pytorch', choices=SCRATCH_INITS,
                        help="train backbones without an --*_init_model_path from random weights, initialised as "
                        "main.py --from_scratch says (pytorch, the bare flag's, or kaiming); main.py refuses "
                        'otherwise')
    parser.add_argument('--compare_backbones', action='store_true',
                        help='also train and test the VOC backbone on each baseline\'s masks (backbone_voc/<method>/) '
                        'and on the ground truth SegmentationClassAug (backbone_voc/ground_truth/: the fully '
                        'supervised upper bound), with the rounds\' schedule, as the paper\'s table compares them')
    parser.add_argument('--uniform_ablation', action='store_true',
                        help='from round 2, also train each round\'s generator with trainLPG.py --seg_probs uniform '
                        '(the same start, data and iterations; lpg_uniform/) and make and score its VOC masks '
                        '(<model_type>_Round<R>_uniform/): the part of a round\'s gain that comes from reading the '
                        'previous backbone')
    parser.add_argument('--voc_split', default='train_aug', help='VOC training split (pseudo masks, backbone)')
    parser.add_argument('--val_split', default='val')
    parser.add_argument('--score_masks', type=str2bool, default=True,
                        help='score the VOC pseudo masks against SegmentationClassAug (needs it)')
    parser.add_argument('--baselines', type=comma_list, default=[BOX.name],
                        help='pseudo-mask baselines to make and score beside LPG, a comma list of '
                        f'{name_list(baseline_methods())} (default {BOX.name}; an empty string for none)'
                        + ''.join(f'; {spec.name} needs --{" --".join(spec.required)}' for spec in baseline_methods()
                                  if spec.required))
    add_method_args(parser, baseline_methods())
    parser.add_argument('--allow_empty', action='store_true',
                        help='go on when a generator (LPG or SAM) labels no foreground in any image (by default the '
                        'run stops there, before training backbones on empty masks)')
    parser.add_argument('--threads', type=JOBS,
                        help='CPU threads of every step (OMP_NUM_THREADS): a fixed count keeps CPU results the same')
    parser.add_argument('--deterministic', action='store_true',
                        help='training steps use deterministic algorithms (torch.use_deterministic_algorithms)')


def add_scaled_down_args(parser):
    """Scaled-down settings (the demo and the tests use these); unset means each script's own default."""
    parser.add_argument('--lpg_iterations', type=per_round(ITERATIONS), help='LPG iterations')
    parser.add_argument('--lpg_batch_size', type=count(2, MAX_BATCH))
    parser.add_argument('--lpg_crop_size', type=LPG_CROP)
    parser.add_argument('--lpg_lr', type=per_round(POSITIVE), help='LPG lr')
    parser.add_argument('--lpg_box_loss_weight', type=per_round(POSITIVE),
                        help='trainLPG.py --box_loss_weight, one number or one per round (default 1, the release\'s '
                        'plain cross entropy; the small-budget recipe uses 5)')
    parser.add_argument('--lpg_warmup_iterations', type=count(0), help='trainLPG.py --warmup_iterations (default 0)')
    parser.add_argument('--backbone_iterations', type=ITERATIONS)
    parser.add_argument('--backbone_batch_size', type=BATCH)
    parser.add_argument('--backbone_crop_size', type=BACKBONE_CROP)
    parser.add_argument('--backbone_lr', type=POSITIVE)
    parser.add_argument('--backbone_warmup_iterations', type=count(0), help="main.py --warmup_iterations (default 0)")
    parser.add_argument('--voc_test_size', type=TEST_SIZE, help='genPseudoMasks.py --voc_test_size (padded up to a '
                        'multiple of 128)')
    parser.add_argument('--coco_test_size', type=TEST_SIZE, help='genPseudoMasks.py --coco_test_size')
    parser.add_argument('--eval_test_size', type=TEST_SIZE, help='test.py --test_size (VGG16 padding, default 513)')


def add_process_args(parser):
    """Devices, parallel jobs, loader workers, precision, and how the network steps are launched."""
    parser.add_argument('--n_jobs', type=JOBS, default=2)
    parser.add_argument('--cuda', type=str2bool, default=None)
    parser.add_argument('--workers', type=WORKERS, default=2)
    parser.add_argument('--amp', choices=AMP_CHOICES, help="every network step's --amp (default: each script's, auto)")
    launch = parser.add_mutually_exclusive_group()
    launch.add_argument('--nproc_per_node', type=JOBS,
                        help='run every network step under torchrun with N processes on this node (one per GPU)')
    launch.add_argument('--launcher', type=shlex.split,
                        help='the command that starts every network step, e.g. "torchrun --nproc_per_node 8" or a '
                        'multi-node torchrun with its rendezvous flags; the script and its flags follow it')


def command_line(**settings):
    """This script's argv for {flag's dest: value} (utils.engine.runtime.command_line): how run_rounds.py and demo.py
    build its commands."""
    return runtime.command_line(get_args_parser(), **settings)



def check_initialisations(args):
    """Refuse before hours of LPG training, not at the first backbone, when no initial weights are given."""
    missing = ['--voc_imagenet_init'] if not args.voc_imagenet_init else []
    if args.rounds > 1 and not args.coco_imagenet_init:
        missing.append('--coco_imagenet_init')
    if missing and not args.from_scratch:
        raise FlagError(f'run_rounds.py needs {" and ".join(missing)} (ImageNet initialisations made by '
                         'utils/imagenet_init.py); pass --from_scratch to train those backbones from random weights')


def absolute_inputs(args):
    """A copy of args whose input paths are absolute: the steps run in the project folder, and paths given relative
    to where run_rounds.py was started must still name the same files there."""
    names = ('voc_root_dir', 'coco_root_dir', 'voc_imagenet_init', 'coco_imagenet_init', *baseline_files())
    return with_values(args, **{name: os.path.abspath(getattr(args, name)) for name in names if getattr(args, name)})


def check_flags(args):
    """The flag combinations (each value is checked where it is parsed)."""
    check_initialisations(args)
    known = [spec.name for spec in baseline_methods()]
    unknown = [method for method in args.baselines if method not in known]
    if unknown:
        raise FlagError(f'--baselines: unknown {", ".join(unknown)} (expected a comma list of {", ".join(known)})')


def main(args):
    check_flags(args)
    baselines = [get_method(name) for name in args.baselines]
    for method in baselines:
        if method.check_inputs:
            method.check_inputs(args, f'the {method.name} baseline')
    args = absolute_inputs(args)
    resolve_voc_root(args.voc_root_dir)  # bad roots are named now, not after the first steps
    if not os.path.isfile(instances_path(args.coco_root_dir)):
        raise MissingFile(f'COCO annotation file not found: {instances_path(args.coco_root_dir)}')
    run = RunLayout(args.work_dir)
    os.makedirs(run.work_dir, exist_ok=True)
    runner = Runner(args)
    runner.step('parse COCO', os.path.join('utils', 'parseCOCO.py'),
                dict(dataRoot=args.coco_root_dir))
    summary = {'rounds': {}}
    summary['baseline_scores'] = {method.name: run_baseline(runner, run, method) for method in baselines}
    if args.compare_backbones:
        # The paper's comparison: the same backbone trained on each baseline's masks and on the ground truth.
        summary['other_backbones'] = {
            method.name: voc_backbone(runner, run, method.name, method.folder(run.pseudo_root('voc')),
                                      f'baseline {method.name}') for method in baselines}
        summary['other_backbones'][GROUND_TRUTH] = voc_backbone(runner, run, GROUND_TRUTH, 'SegmentationClassAug',
                                                                'ground truth')
    for r in range(1, args.rounds + 1):
        summary['rounds'][r] = run_round(runner, r, run, last_round=r == args.rounds)
    summary['step_seconds'] = runner.times
    write_json(run.summary, summary)
    return summary


if __name__ == '__main__':
    run_script(main, get_args_parser())
