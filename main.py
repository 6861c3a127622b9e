r"""Train a DeepLab segmentation backbone on (pseudo) masks.

    python main.py --root_path VOC2012 --label_path_name PSEUDO/vgg16_Round1 --model_type vgg16 \
        --init_model_path PretrainedModel/vgg16_largefov_imagenet.pth --save_path OUT --cuda true
    python main.py --dataset coco --root_path COCO --label_path_name COCO_PSEUDO/vgg16_Round1 ...  # 61 classes
    python main.py --dataset custom --annotations FILE.json --image_dir DIR --label_path_name OUT/vgg16_Round1 ...

The defaults are the original schedule: VGG16 SGD lr 1e-3, batch 30, 20k iterations, crop 321;
ResNet-101 lr 2.5e-4, batch 2 x 5 accumulated steps, 40k iterations. `<save_path>/checkpoint_last.pth`
holds model, optimizer and iteration (--resume continues from it); `<save_path>/<model_type>_final.pth`
is the plain state dict, `<model_type>_iter<N>.pth` the periodic snapshots (--keep_checkpoints K keeps the last K).

On several GPUs: `torchrun --nproc_per_node N main.py ...` (DistributedDataParallel); --batch_size stays the
global batch, so the schedule and learning rates hold at any GPU count.
"""
import contextlib
import os
from functools import partial

import torch
import torch.nn.functional as F

from datasets.constants import IGNORE_LABEL
from datasets.registry import add_source_args, dataset_names, dataset_source, get_dataset
from datasets.segmentation import SegmentationDataset
from datasets.transforms import ScalePadCropFlip, nearest_centres
from models.backbones import SCRATCH_INITS, backbone_names, build_backbone, get_backbone
from utils.engine import layout
from utils.engine.checkpoint import check_weights, load_weights
from utils.engine.distributed import init_distributed
from utils.engine.errors import FlagError
from utils.engine.files import releases_claims
from utils.engine.flags import (
    BACKBONE_CROP,
    BATCH,
    ITERATIONS,
    NON_NEGATIVE,
    POSITIVE,
    Number,
    ScriptParser,
    count,
)
from utils.engine.precision import Precision, add_amp_arg
from utils.engine.records import Record, settings_of
from utils.engine.runtime import add_device_args, run_script, with_values
from utils.engine.steps import ScriptStep, register_step
from utils.engine.trainer import TrainingJob, fit, training_completion
from utils.engine.training import TRAINING_RUNTIME_FLAGS, add_training_args, convert_sync_bn, set_poly_lr

# Which flags shape the trained weights (the completion record holds them), and which only change how the run
# goes (--num_iterations is the record's target; --save_path its folder). tests/test_records.py fails on a flag
# that is in neither.
OUTPUT_FLAGS = frozenset({
    'annotations', 'batch_size', 'crop_size', 'dataset', 'deterministic', 'from_scratch', 'image_dir',
    'init_model_path', 'iter_size', 'label_path_name', 'lr', 'match_release', 'model_type', 'momentum', 'root_path',
    'seed', 'split', 'split_file', 'warmup_iterations', 'weight_decay'})
RUNTIME_FLAGS = TRAINING_RUNTIME_FLAGS | {'num_iterations', 'save_path'}


def schedule_default(key):
    """'default: 20000 (vgg16), 40000 (resnet101)' from the backbone registry."""
    return 'default: ' + ', '.join(f'{getattr(get_backbone(name).schedule, key):g} ({name})'
                                   for name in backbone_names())


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--dataset', choices=dataset_names(), default='voc',
                        help='voc: 21-class VOC backbone; coco: 61-class COCO-60 backbone for the next LPG round; '
                        'custom: a backbone with a class per category of --annotations')
    parser.add_argument('--root_path', help='VOC2012 folder, or the COCO folder with --dataset coco')
    add_source_args(parser, 'the COCO-format json of the images')
    parser.add_argument('--label_path_name', required=True,
                        help='folder of training masks (the pseudo masks of genPseudoMasks.py), absolute or relative '
                        'to --root_path; a ground-truth folder (SegmentationClass, SegmentationClassAug) trains the '
                        'fully supervised upper bound')
    parser.add_argument('--model_type', choices=backbone_names(), default='vgg16')
    parser.add_argument('--init_model_path', help='initial weights (e.g. from utils/imagenet_init.py)')
    parser.add_argument('--from_scratch', nargs='?', const='pytorch', choices=SCRATCH_INITS,
                        help='start from random weights (without it, --init_model_path is required), initialised '
                        'by: pytorch (what a bare --from_scratch means: PyTorch\'s default initialisation, from '
                        'which the plain VGG16 stack barely trains) or kaiming (Kaiming-normal convolutions, the '
                        'classifier N(0, 0.01))')
    parser.add_argument('--match_release', action='store_true',
                        help="train as the release's code really did: VGG16 fc8 at 1x/2x instead of 10x/20x; "
                        'ResNet-101 ASPP weights never updated, ASPP biases 20x, batch-norm running statistics '
                        'updated; scaled crop sides truncated with int() instead of rounded')
    parser.add_argument('--save_path', required=True)
    parser.add_argument('--split', help='training split: a list under ImageSets/Segmentation for VOC (default '
                        'train_aug), the image folder for COCO (default train2017)')
    parser.add_argument('--split_file', help='image id list (default: the VOC split; for COCO the masks present)')
    parser.add_argument('--num_iterations', type=ITERATIONS, help=f'updates; {schedule_default("num_iterations")}')
    parser.add_argument('--batch_size', type=BATCH, help=f'images per step; {schedule_default("batch_size")}')
    parser.add_argument('--iter_size', type=count(1),
                        help=f'accumulated steps per update; {schedule_default("iter_size")}')
    parser.add_argument('--lr', type=POSITIVE, help=f'base lr; {schedule_default("lr")}')
    parser.add_argument('--warmup_iterations', type=count(0), default=0,
                        help='ramp the lr linearly over the first N iterations before the poly decay (default 0: '
                        'none, as in the release); training from random weights (--from_scratch) tolerates a '
                        'larger --lr with it')
    parser.add_argument('--momentum', type=Number(float, low=0, high=1), default=0.9)
    parser.add_argument('--weight_decay', type=NON_NEGATIVE, default=5e-4)
    parser.add_argument('--crop_size', type=BACKBONE_CROP, default=321,
                        help='side of the square training crop (smaller ones leave the stride-8 output 1 cell wide)')
    parser.add_argument('--num_print_log', type=count(1), default=20)
    parser.add_argument('--num_save_model', type=count(1),
                        help=f'save a snapshot every N iterations; {schedule_default("num_save_model")}')
    add_training_args(parser)
    add_amp_arg(parser)
    add_device_args(parser, workers=4, seed=True)
    return parser


def fill_schedule_defaults(args):
    """A copy of args in which unset --lr/--batch_size/--iter_size/--num_iterations/--num_save_model take the
    backbone's schedule (args itself is left as it is)."""
    schedule = get_backbone(args.model_type).schedule
    keys = ('lr', 'batch_size', 'iter_size', 'num_iterations', 'num_save_model')
    return with_values(args, **{key: getattr(schedule, key) for key in keys if getattr(args, key) is None})


def check_flags(args):
    """The flag combinations (each value is checked where it is parsed): refuse a silent random start; say so
    when the training masks are ground truth."""
    if not args.init_model_path and not args.from_scratch:
        raise FlagError('main.py needs --init_model_path (e.g. an ImageNet initialisation made by '
                        'utils/imagenet_init.py); pass --from_scratch to train from random weights on purpose')
    spec = get_dataset(args.dataset)
    if os.path.basename(os.path.normpath(args.label_path_name)) in spec.ground_truth_dirs:
        print(f'notice: --label_path_name {args.label_path_name} holds the ground-truth masks of {spec.title}: '
              'this trains a fully supervised model (the upper bound), not a box-supervised one', flush=True)


def data_source(args):
    """The dataset entry and what it reads: the root folder, or the annotations and the image folder."""
    return dataset_source(args.dataset, args.root_path, args.annotations, args.image_dir)


def label_folder(args):
    """--label_path_name, relative to the root folder of a dataset that has one."""
    if os.path.isabs(args.label_path_name) or not args.root_path:
        return args.label_path_name
    return os.path.join(args.root_path, args.label_path_name)


def build_dataset(args):
    spec, source = data_source(args)
    items = spec.segmentation_items(source, label_folder(args), args.split or spec.default_split, args.split_file)
    # Labels rescaled with PIL's Image.NEAREST (cell centres), as the release's VOC dataset does.
    augment = ScalePadCropFlip(args.crop_size, nearest_centres, seed=args.seed,
                               round_size=int if args.match_release else round)
    return SegmentationDataset(items, augment=augment, num_classes=len(spec.class_names(source)))


def completion(args):
    """What this training is made from (its settings, the training masks, the data listing and the initial weights
    it reads), the iteration count that finishes it, and its final weights: this script's one record, for main and
    run_rounds.py."""
    args = fill_schedule_defaults(args)
    spec, source = data_source(args)
    inputs = {'labels': label_folder(args), 'init_model': args.init_model_path,
              **spec.box_inputs(source, args.split or spec.default_split, args.split_file)}
    record = Record(args.save_path, settings_of(args, OUTPUT_FLAGS), inputs, target={'iterations': args.num_iterations})
    return training_completion(record, layout.backbone_weights(args.save_path, args.model_type))


def segmentation_loss(outputs, labels):
    """Cross-entropy (255 ignored, in float32) summed over the outputs (the multi-scale ResNet has four), each
    against the labels resized to its size as the release does (PIL's NEAREST: cell centres)."""
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    loss = 0.0
    for logits in outputs:
        # PIL's NEAREST to the logit size, as the release's training loop does.
        loss = loss + F.cross_entropy(logits.float(), nearest_centres(labels, logits.shape[-2:]),
                                      ignore_index=IGNORE_LABEL)
    return loss


def train_step(trained, batches, iter_size, precision, ctx):
    """One update of the backbone, the step the training loop runs: iter_size accumulated forward and backward
    passes, the loss of each (segmentation_loss) scaled by 1 / iter_size; under torchrun, gradients are averaged
    across processes once, at the last pass. Returns the update's loss, detached."""
    update_loss = 0.0
    for accumulated in range(iter_size):
        images, labels, _ids = next(batches)
        images, labels = precision.prepare_input(images), labels.to(ctx.device, non_blocking=True)
        sync = accumulated == iter_size - 1 or not ctx.distributed
        with contextlib.nullcontext() if sync else trained.no_sync():
            with precision.autocast():
                outputs = trained(images)
            loss = segmentation_loss(outputs, labels) / iter_size
            precision.scaler.scale(loss).backward()
        update_loss = update_loss + loss.detach()
    return update_loss


def build_network(args, ctx, precision):
    """The backbone (from --init_model_path, or from random weights with --from_scratch), prepared for its
    precision, in train mode, its SGD optimiser with the backbone's learning-rate groups, and its step."""
    num_classes = class_count(args)
    backbone = get_backbone(args.model_type)
    model = build_backbone(args.model_type, num_classes)
    if args.init_model_path:
        load_weights(model, args.init_model_path, what=network_name(args, num_classes))
    else:
        backbone.scratch_init(model, args.from_scratch)
    model = precision.prepare_model(convert_sync_bn(model, ctx, args.sync_bn)).train()
    optimizer = torch.optim.SGD(backbone.training_setup(model, args.lr, args.weight_decay, args.match_release),
                                lr=args.lr, momentum=args.momentum)
    return model, optimizer, partial(train_step, iter_size=args.iter_size, precision=precision, ctx=ctx)


def class_count(args):
    spec, source = data_source(args)
    return len(spec.class_names(source))


def network_name(args, num_classes):
    """How the messages about --init_model_path name the network it must fit."""
    return f'{args.model_type} with {num_classes} classes'


def check_init_weights(args):
    """--init_model_path, checked before the run writes anything, on a network built on the meta device (no
    memory taken, no random number drawn)."""
    if args.init_model_path:
        num_classes = class_count(args)
        with torch.device('meta'):
            check_weights(build_backbone(args.model_type, num_classes), args.init_model_path,
                          what=network_name(args, num_classes))


@releases_claims
def main(args):
    args = fill_schedule_defaults(args)
    check_flags(args)
    check_init_weights(args)
    ctx = init_distributed(args.cuda)
    precision = Precision(args.amp, ctx.device, training=True)
    ctx.print(precision.describe())
    job = TrainingJob(
        completion=completion(args), final_path=layout.backbone_weights(args.save_path, args.model_type),
        snapshot=lambda it: layout.backbone_snapshot(args.save_path, args.model_type, it),
        snapshot_pattern=layout.backbone_snapshot_pattern(args.model_type), iterations=args.num_iterations,
        batches_per_update=args.iter_size,
        describe=(f'{args.dataset} {args.model_type}: {{count}} images, {args.num_iterations} iterations, batch '
                  f'{args.batch_size} x {args.iter_size} on {ctx.world_size} process(es), {precision.label}'),
        counted='images', drop_short_batch=True,
        dataset=lambda: build_dataset(args), build=lambda: build_network(args, ctx, precision),
        set_lr=lambda optimizer, done: set_poly_lr(optimizer, done, args.num_iterations,
                                                   warmup=args.warmup_iterations))
    return fit(job, args, ctx, precision)


STEP = register_step(ScriptStep('main.py', get_args_parser, completion, runs_networks=lambda args: True))

if __name__ == '__main__':
    run_script(main, get_args_parser())
