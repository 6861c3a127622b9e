r"""Train the LPG generator on the masks of an auxiliary set (COCO-60 by default) for one round.

Round 1 trains the 4-channel generator (box mask + image; no backbone needed). --round defaults to 2, as in
the release, so round 1 must be asked for:
    python trainLPG.py --coco_root_dir COCO --round 1 --model_save_path OUT
Round R >= 2 trains the 5-channel generator, reading the round R-1 COCO-60 backbone's probabilities; the
release's published command (round 2, from a 5-channel generator such as LPG_Round2.pth) works as it is:
    python trainLPG.py --coco_root_dir COCO --init_seg_model_path COCO60_Round1.pth \
        --init_lpg_model_path PretrainedModel/LPG/LPG_Round2.pth
--init_lpg_model_path may also be a round-1 (4-channel) generator, which the release cannot load: its filters
are widened with a zero filter for the probability channel:
    python trainLPG.py --coco_root_dir COCO --round 2 --init_seg_model_path COCO60_Round1.pth \
        --init_lpg_model_path OUT/Round_1/LPG_Round1.pth --model_save_path OUT
Any COCO-format dataset with masks, some categories left out as COCO-60 leaves out the VOC classes:
    python trainLPG.py --dataset custom --annotations FILE.json --image_dir DIR --exclude_categories A,B \
        --round 1 --model_save_path OUT

Checkpoints go to `<model_save_path>/Round_<R>/`: `LPG_Round<R>_iter<N>.pth` every --num_save_model
iterations, `checkpoint_last.pth` (model, optimizer and iteration; --resume continues from it) and
`LPG_Round<R>.pth`, the plain state dict in the format of the released weights; `loss_log.csv` and
`loss_curve.png` beside them, and `record.json` (what the run was made from: a rerun needs --resume or --overwrite).

On several GPUs: `torchrun --nproc_per_node N trainLPG.py ...` (DistributedDataParallel); --batch_size stays the
global batch, so the schedule and learning rate hold at any GPU count.
"""
from functools import partial

import torch

from datasets.boxes import LPG_CROP
from datasets.coco import COCO60LPGDataset, bbox_annos_path, seg60_dir
from datasets.coco_json import load_instances
from datasets.custom import CustomLabels
from datasets.custom import auxiliary_classes as custom_classes
from datasets.registry import add_source_args, get_dataset
from models.backbones import backbone_names, build_backbone
from models.hourglass import LPG_STRIDE
from models.lpg import (
    SEG_PROBS,
    LPGNet,
    UniformProbabilities,
    box_weighted_cross_entropy,
    frozen_class_probs,
    lpg_in_channels,
    lpg_input,
    widen_to_five_channels,
)
from utils.engine import layout
from utils.engine.checkpoint import check_weights, describe_mismatch, load_checkpoint, load_weights, unwrap_state_dict
from utils.engine.distributed import init_distributed
from utils.engine.errors import FlagError, InputError
from utils.engine.files import releases_claims
from utils.engine.flags import ITERATIONS, MAX_BATCH, NON_NEGATIVE, POSITIVE, ScriptParser, count
from utils.engine.precision import Precision, add_amp_arg
from utils.engine.records import Record, settings_of
from utils.engine.runtime import add_device_args, comma_list, run_script, with_values
from utils.engine.steps import ScriptStep, register_step
from utils.engine.trainer import TrainingJob, fit, training_completion
from utils.engine.training import TRAINING_RUNTIME_FLAGS, add_training_args, convert_sync_bn, set_poly_lr
from utils.parseCOCO import label_custom

# Which flags shape the trained generator (the completion record holds them), and which only change how the run
# goes (--num_max_iterations is the record's target; --model_save_path its folder). tests/test_records.py fails
# on a flag that is in neither.
OUTPUT_FLAGS = frozenset({
    'annotations', 'batch_size', 'box_loss_weight', 'coco_root_dir', 'coco_split', 'crop_size', 'dataset',
    'deterministic', 'exclude_categories', 'image_dir', 'init_lpg_model_path', 'init_seg_model_path', 'labels_dir',
    'lr', 'match_release', 'max_images', 'num_update_lr', 'round', 'seed', 'seg_model_type', 'seg_probs',
    'warmup_iterations', 'weight_decay'})
RUNTIME_FLAGS = TRAINING_RUNTIME_FLAGS | {'num_max_iterations', 'model_save_path'}


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--dataset', choices=['coco', 'custom'], default='coco',
                        help='the auxiliary set: coco (COCO-60, after utils/parseCOCO.py) or custom (any COCO-format '
                        'mask dataset: --annotations, --image_dir, --exclude_categories)')
    parser.add_argument('--coco_root_dir', help='COCO folder, after utils/parseCOCO.py')
    add_source_args(parser, 'a COCO-format json with masks')
    parser.add_argument('--exclude_categories', type=comma_list,
                        help='--dataset custom: category names left out of the training (NAME,NAME), as COCO-60 '
                        'leaves out the 20 VOC classes')
    parser.add_argument('--labels_dir', help='--dataset custom: where the labelling step writes (default '
                        '<model_save_path>/auxiliary_labels)')
    parser.add_argument('--round', type=count(1), default=2,
                        help='the round to train (default 2, as in the release): 1 trains the box + image generator '
                        '(4 channels, no backbone); R >= 2 the 5-channel one that reads the round R-1 backbone')
    parser.add_argument('--init_seg_model_path', help='round R-1 backbone of the auxiliary set (COCO-60: 61 classes; '
                        'custom: one per kept category + background); needed for round >= 2')
    parser.add_argument('--seg_probs', choices=SEG_PROBS, default='backbone',
                        help='round >= 2: where the probability channel comes from: backbone (the method: the '
                        'round R-1 backbone, --init_seg_model_path), or uniform (1 / classes everywhere, no '
                        'backbone: the ablation that shows what reading the backbone adds)')
    parser.add_argument('--seg_model_type', choices=backbone_names(), default='vgg16',
                        help='architecture of --init_seg_model_path')
    parser.add_argument('--init_lpg_model_path',
                        help='start from this generator (e.g. the previous round); a 4-channel one is widened to 5')
    parser.add_argument('--model_save_path', default='LPG_checkpoints',
                        help='where Round_<R>/ is written (default ./LPG_checkpoints, relative to the working '
                        'directory: the release\'s published command names no folder)')
    parser.add_argument('--batch_size', type=count(2, MAX_BATCH), default=32,
                        help='the global batch (the generator trains batch norm: 2 samples per process at least)')
    parser.add_argument('--lr', type=POSITIVE, default=1e-4)
    parser.add_argument('--weight_decay', type=NON_NEGATIVE, default=5e-4)
    parser.add_argument('--coco_train_size', '--crop_size', dest='crop_size', type=LPG_CROP, default=512,
                        help='side of the square training crop: the generator reads sides that are multiples of '
                        f'{LPG_STRIDE} (the release\'s flag name; --crop_size is the same flag)')
    parser.add_argument('--max_images', type=count(1), default=None, help='use only the first N COCO-60 images')
    parser.add_argument('--match_release', action='store_true',
                        help='truncate scaled crop sides with int() as the release does, instead of rounding')
    parser.add_argument('--coco_split', default='train2017')
    parser.add_argument('--num_print_log', type=count(1), default=10, help='log every N iterations')
    parser.add_argument('--num_update_lr', type=count(1), default=50,
                        help='apply the poly learning rate every N iterations')
    parser.add_argument('--num_save_model', type=count(1), default=5000, help='save a checkpoint every N iterations')
    parser.add_argument('--num_max_iterations', type=ITERATIONS, default=100000)
    parser.add_argument('--warmup_iterations', type=count(0), default=0,
                        help='ramp the lr linearly over the first N iterations (default 0: none, as in the release)')
    parser.add_argument('--box_loss_weight', type=POSITIVE, default=1.0,
                        help='weight of the pixels inside the sample\'s boxes in the cross entropy, against 1 outside '
                        '(default 1: the release\'s plain cross entropy); the small-budget recipe uses 5, without '
                        'which a short round-1 run can settle on background everywhere')
    add_training_args(parser)
    add_amp_arg(parser)
    add_device_args(parser, workers=4, seed=True)
    return parser


def init_generator(lpg, path, load=True):
    """Load a generator checkpoint; a round-1 (4-channel) one seeds a 5-channel generator
    (`models.lpg.widen_to_five_channels`). load=False: only check that it would load."""
    state = unwrap_state_dict(load_checkpoint(path), path)
    if lpg.in_channels == 5:
        state = widen_to_five_channels(state)
    problems = describe_mismatch(lpg.state_dict(), state)
    if problems:
        raise InputError(f'{path} cannot initialise LPGNet(in_channels={lpg.in_channels}):{problems}')
    if load:
        lpg.load_state_dict(state)
    return lpg


def backbone_name(args, num_classes):
    """How the messages about --init_seg_model_path name the backbone it must fit."""
    return f'{args.seg_model_type} {args.dataset} backbone ({num_classes} classes)'


def check_checkpoints(args):
    """The checkpoints the run reads, checked before it writes anything (the labels of a custom set included):
    the generator it starts from and, from round 2 on, the round R-1 backbone. The networks are built on the meta
    device, so no memory is taken and no random number drawn (the run's initialisation is unchanged)."""
    with torch.device('meta'):
        if args.init_lpg_model_path:
            init_generator(LPGNet(in_channels=lpg_in_channels(args.round)), args.init_lpg_model_path, load=False)
        if args.round >= 2 and args.seg_probs != 'uniform':
            num_classes = auxiliary_classes(args, before_labelling=True)
            check_weights(build_backbone(args.seg_model_type, num_classes), args.init_seg_model_path,
                          what=backbone_name(args, num_classes))


def check_flags(args):
    """The flag combinations (each value is checked where it is parsed): the auxiliary set's flags; a round-1
    generator reads no backbone, later rounds cannot train without one."""
    needed = ['--coco_root_dir'] if args.dataset == 'coco' else ['--annotations', '--image_dir']
    missing = [flag for flag in needed if not getattr(args, flag[2:])]
    if missing:
        raise FlagError(f'--dataset {args.dataset} needs {" and ".join(missing)}')
    if args.round == 1 and args.init_seg_model_path:
        raise FlagError('--round 1 trains a generator that reads no backbone, so --init_seg_model_path would be '
                         'ignored: drop --init_seg_model_path, or pass --round 2 or later')
    if args.seg_probs == 'uniform':
        if args.round < 2 or args.init_seg_model_path:
            raise FlagError('--seg_probs uniform replaces the backbone that a round >= 2 generator reads: pass '
                            '--round 2 or later, without --init_seg_model_path')
        return
    if args.round >= 2 and not args.init_seg_model_path:
        raise FlagError(f'--round {args.round} (the default is 2, as in the release) needs --init_seg_model_path, '
                        f'the round {args.round - 1} backbone of the auxiliary set; --round 1 trains the box + image '
                        'generator, which reads none')


def resolved_source(args):
    """A copy of args in which, for --dataset custom, --labels_dir defaults to <model_save_path>/auxiliary_labels
    (args itself is left as it is)."""
    labels_dir = args.labels_dir
    if args.dataset == 'custom' and not labels_dir:
        labels_dir = layout.auxiliary_labels(args.model_save_path)
    return with_values(args, labels_dir=labels_dir)


def build_dataset(args, ctx=None):
    """The training samples: COCO-60 from parseCOCO's files, or a custom set labelled first (once, on rank 0)."""
    options = dict(crop_size=args.crop_size, max_images=args.max_images, seed=args.seed,
                   round_size=int if args.match_release else round)
    if args.dataset == 'coco':
        return COCO60LPGDataset(args.coco_root_dir, args.coco_split, **options)
    label = lambda: label_custom(args.annotations, args.labels_dir, args.exclude_categories)
    (ctx.on_main(label) if ctx is not None else label())
    return CustomLabels(args.labels_dir).dataset(args.image_dir, **options)


def auxiliary_classes(args, before_labelling=False):
    """The class count of the auxiliary set's backbone: 61 for COCO-60, kept categories + 1 for a custom set
    (read from its labels, or before_labelling from its annotations)."""
    if args.dataset == 'coco':
        return get_dataset('coco').num_classes
    if before_labelling:
        return len(custom_classes(load_instances(args.annotations), args.exclude_categories)) + 1
    return CustomLabels(args.labels_dir).num_classes()


def build_models(args, ctx, precision):
    """The generator to train (round-1 weights widened for later rounds) and, from round 2 on, the frozen
    round R-1 COCO-60 backbone it reads."""
    lpg = LPGNet(in_channels=lpg_in_channels(args.round))
    if args.init_lpg_model_path:
        init_generator(lpg, args.init_lpg_model_path)
    lpg = precision.prepare_model(convert_sync_bn(lpg, ctx, args.sync_bn))
    backbone = None
    if args.round < 2:
        return lpg, None
    num_classes = auxiliary_classes(args)
    if args.seg_probs == 'uniform':
        return lpg, UniformProbabilities(num_classes)
    backbone = build_backbone(args.seg_model_type, num_classes)
    load_weights(backbone, args.init_seg_model_path, what=backbone_name(args, num_classes))
    backbone = precision.frozen.prepare_model(backbone).eval()
    for param in backbone.parameters():
        param.requires_grad_(False)
    return lpg, backbone


def train_step(lpg, batches, backbone, precision, box_loss_weight=1.0):
    """One update of the generator, the step the training loop runs: the loss of the next batch (generator_loss),
    backward (scaled). Returns the loss, detached."""
    loss = generator_loss(lpg, backbone, next(batches), precision, box_loss_weight)
    precision.scaler.scale(loss).backward()
    return loss.detach()


def generator_loss(lpg, backbone, batch, precision, box_loss_weight=1.0):
    """The loss of one batch: the generator reads the images, the box masks and (round >= 2) the frozen
    backbone's probability of each sample's class; the cross entropy weighs the pixels inside the boxes
    box_loss_weight times those outside (1: the release's plain cross entropy)."""
    images, box_masks, targets, class_ids = batch
    targets, class_ids = targets.to(precision.device, non_blocking=True), class_ids.to(precision.device)
    with precision.autocast():
        seg_probs = None if backbone is None else frozen_class_probs(backbone, images, class_ids, precision)
        images, box_masks = precision.prepare_input(images), precision.prepare_input(box_masks)
        logits = lpg(lpg_input(images, box_masks, seg_probs))
    return box_weighted_cross_entropy(logits.float(), targets, box_masks, box_loss_weight)


def completion(args):
    """What this round's training is made from (its settings, the auxiliary set's files and the checkpoints it
    reads), the iteration count that finishes it, and its final weights: this script's one record, for main and
    run_rounds.py."""
    args = resolved_source(args)
    if args.dataset == 'coco':
        inputs = {'boxes': bbox_annos_path(args.coco_root_dir, args.coco_split),
                  'masks': seg60_dir(args.coco_root_dir, args.coco_split)}
    else:
        inputs = {'annotations': args.annotations}
    inputs.update(init_seg_model=args.init_seg_model_path, init_lpg_model=args.init_lpg_model_path)
    record = Record(layout.lpg_dir(args.model_save_path, args.round), settings_of(args, OUTPUT_FLAGS), inputs,
                    target={'iterations': args.num_max_iterations})
    return training_completion(record, layout.lpg_weights(args.model_save_path, args.round))


def build_training(args, ctx, precision):
    """The generator in train mode, its Adam optimiser (initial_lr for the poly schedule), and its step, which
    reads the frozen backbone (none in round 1)."""
    lpg, backbone = build_models(args, ctx, precision)
    optimizer = torch.optim.Adam(lpg.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    for group in optimizer.param_groups:
        group['initial_lr'] = args.lr
    return lpg.train(), optimizer, partial(train_step, backbone=backbone, precision=precision,
                                           box_loss_weight=args.box_loss_weight)


@releases_claims
def main(args):
    check_flags(args)
    args = resolved_source(args)
    check_checkpoints(args)
    ctx = init_distributed(args.cuda)
    precision = Precision(args.amp, ctx.device, training=True)
    ctx.print(precision.describe())

    def set_lr(optimizer, done):
        # The release applies the poly rate every --num_update_lr iterations; a warm-up ramps at every one.
        if done % args.num_update_lr == 0 or done <= args.warmup_iterations:
            set_poly_lr(optimizer, done, args.num_max_iterations, warmup=args.warmup_iterations)

    # A short last batch is used, except a lone sample: batch norm in training needs more than one value
    # per channel, and the hourglass bottom of a 128 crop is 1x1. Shuffling moves the left-out sample each epoch.
    job = TrainingJob(
        completion=completion(args), final_path=layout.lpg_weights(args.model_save_path, args.round),
        snapshot=lambda it: layout.lpg_snapshot(args.model_save_path, args.round, it),
        snapshot_pattern=layout.lpg_snapshot_pattern(args.round), iterations=args.num_max_iterations,
        describe=(f'round {args.round}: {{count}} (image, class) samples, {args.num_max_iterations} iterations, '
                  f'batch {args.batch_size} on {ctx.world_size} process(es), {precision.label}'),
        counted='samples', drop_short_batch=False, min_batch=2,
        dataset=lambda: build_dataset(args, ctx), build=lambda: build_training(args, ctx, precision), set_lr=set_lr)
    return fit(job, args, ctx, precision)


STEP = register_step(ScriptStep('trainLPG.py', get_args_parser, completion, runs_networks=lambda args: True))

if __name__ == '__main__':
    run_script(main, get_args_parser())
