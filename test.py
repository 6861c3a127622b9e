"""Evaluate a segmentation backbone (optionally with DenseCRF), or score a folder of pseudo masks.

    python test.py --type test --root_path VOC2012 --model_type vgg16 --model_path final.pth
    python test.py --type crf  --root_path VOC2012 --model_type vgg16 --n_jobs 8
    python test.py --type masks --root_path VOC2012 --pred_dir PSEUDO/vgg16_Round1 --split train_aug
    python test.py --type masks --dataset custom --annotations FILE.json --image_dir DIR --pred_dir OUT/vgg16_Round1

`test` writes the raw logits (`<save_path>/logits/ID.npz`), predictions (`pred/ID.png`) and `scores_test.json`
(default save_path: `eval_<split>/` beside the model), and records the run in `./.lpg/` of the working directory.
`crf` reuses those logits (computing any that are missing), refines them with DenseCRF in parallel and writes
`crf/ID.png` and `scores_crf.json` with the scores without and with CRF; without --model_path it reads the
last `--type test` run of --model_type started from the same working directory, as the release's commands do.
`masks` scores pseudo masks against the ground truth (default `SegmentationClassAug`), the pseudo-mask quality
table, and writes `scores_masks_<folder>.json`. With --dataset custom the ground truth is the json's own masks.
"""
import json
import os
from dataclasses import asdict

from datasets.registry import DATASETS, add_source_args, dataset_source
from models.backbones import backbone_names, get_backbone
from utils.engine import layout
from utils.engine.distributed import init_distributed
from utils.engine.errors import FlagError, InputError
from utils.engine.files import releases_claims, write_json
from utils.engine.flags import BATCH, JOBS, MAX_SIDE, Number, NumberList, ScriptParser, count
from utils.engine.precision import Precision, add_amp_arg
from utils.engine.records import Completion, Record, settings_of
from utils.engine.runtime import add_device_args, run_script, with_values
from utils.engine.steps import ScriptStep, register_step
from utils.evaluation.backbone_eval import load_backbone, logits_of_split, predict, score_backbone
from utils.evaluation.mask_report import masks_record, masks_save_path, score_pseudo_masks
from utils.evaluation.visualize import write_overlays

DEFAULT_TEST_SIZE = 513


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--type', choices=['test', 'crf', 'masks', 'predict'], default='test',
                        help='test: scores; crf: scores without and with DenseCRF; masks: score pseudo-mask folders; '
                        'predict: label maps of images without ground truth, in the VOC evaluation-server layout')
    parser.add_argument('--dataset', choices=[name for name, spec in DATASETS.items() if spec.eval_items],
                        default='voc', help='voc, or custom: the images and masks of a COCO-format json')
    parser.add_argument('--root_path', help='VOC2012 folder')
    add_source_args(parser, 'the COCO-format json (its masks are the ground truth)')
    parser.add_argument('--model_type', choices=backbone_names(), default='vgg16')
    parser.add_argument('--model_path', help='backbone checkpoint (test; crf, where it defaults to the model of the '
                        'last --type test run of --model_type started from the working directory, as in the release)')
    parser.add_argument('--pred_dir', nargs='+', help='folders of pseudo masks to score side by side (masks)')
    parser.add_argument('--report', help='--type masks: name of the report files (default masks_report_<folders>)')
    parser.add_argument('--split', help='split under ImageSets/Segmentation; default val (train_aug for masks)')
    parser.add_argument('--split_file', help='image id list instead of --split')
    parser.add_argument('--gt_dir', help='ground-truth folder (relative to --root_path or absolute); '
                        'default SegmentationClass (SegmentationClassAug for masks)')
    parser.add_argument('--save_path', help='output folder; default <model dir>/eval_<split> or <pred_dir>/..')
    parser.add_argument('--n_jobs', type=JOBS, default=4, help='parallel DenseCRF processes')
    parser.add_argument('--test_size', type=count(1, MAX_SIDE),
                        help='inputs of the backbones that are tested padded (VGG16) are padded (bottom/right) to '
                        f'this size, default {DEFAULT_TEST_SIZE} as in the original (with --type crf and no '
                        '--model_path: that of the last --type test run); the others (ResNet-101) are not padded')
    parser.add_argument('--overwrite', action='store_true',
                        help='recompute the logits in the output folder when they came from another model or settings '
                        '(without it such a folder is refused)')
    parser.add_argument('--match_release', action='store_true',
                        help='run the CRF of backbones tested padded (VGG16) on the whole padded input, the image '
                        'padded with black, then crop, as the release does (default: on the image itself)')
    parser.add_argument('--crf', action='store_true', help='--type predict: refine the predictions with DenseCRF')
    parser.add_argument('--overlays', action='store_true',
                        help='also write each prediction over its image in class colours (<save_path>/overlays/)')
    parser.add_argument('--scales', type=NumberList(Number(float, low=0.25, high=4), holding=1),
                        help='test-time scales whose logits are averaged (before the CRF) at the size of scale 1, '
                        'e.g. 0.75,1,1.25; default 1, the release\'s single scale')
    parser.add_argument('--flip', action='store_true', default=None,
                        help='also average the logits of the mirrored images (test-time augmentation)')
    parser.add_argument('--batch_size', type=BATCH, default=8, help='images per forward (those of one input size)')
    parser.add_argument('--writer_threads', type=JOBS, default=4, help='threads writing logits')
    add_amp_arg(parser)
    add_device_args(parser, workers=2)
    return parser


# Which flags shape the logits (the logits record holds them; --test_size only for backbones tested padded), and
# which do not: how the run goes, what is done with the logits, and what the record holds otherwise (--model_path
# as its input, --split in its folder). tests/test_records.py fails on a flag that is in neither.
OUTPUT_FLAGS = frozenset({'amp', 'cuda', 'flip', 'model_type', 'scales', 'test_size'})
RUNTIME_FLAGS = frozenset({
    'type', 'n_jobs', 'batch_size', 'writer_threads', 'workers', 'overwrite', 'gt_dir', 'match_release', 'pred_dir',
    'save_path', 'root_path', 'split_file', 'annotations', 'image_dir', 'dataset', 'report', 'crf', 'overlays',
    'model_path', 'split'})


def data_source(args):
    return dataset_source(args.dataset, args.root_path, args.annotations, args.image_dir)


def default_split(args):
    return args.split or {'masks': 'train_aug', 'predict': 'test'}.get(args.type, 'val')


def resolve_defaults(args):
    """A copy of args with --test_size, --scales and --flip filled in where they are unset (DEFAULT_TEST_SIZE,
    scale 1, no flip). The parser leaves them unset so that --type crf without --model_path can take them from the
    last --type test run first (last_test_run); args itself is left as it is."""
    return with_values(args, test_size=args.test_size or DEFAULT_TEST_SIZE, scales=tuple(args.scales or (1.0,)),
                       flip=bool(args.flip))


def logits_record(args, split):
    """The record of the logits folder: the model they come from and the settings that shape them."""
    save_path = args.save_path or layout.eval_dir(args.model_path, split)
    settings = settings_of(args, OUTPUT_FLAGS)
    if not get_backbone(args.model_type).pad_to_test_size:
        settings.pop('test_size')  # unpadded backbones do not use it
    return Record(layout.eval_subdir(save_path, 'logits'), settings, {'model': args.model_path})


def logits_present(folder):
    """Whether the logits of a finished run are all still there (for Record.is_done)."""
    return lambda summary: sum(name.endswith('.npz') for name in os.listdir(folder)) == summary.get('images')


def ground_truth(args, spec, source, scratch_dir):
    return spec.ground_truth(source, args.gt_dir, args.type == 'masks', os.path.join(scratch_dir, 'ground_truth'))


def completion(args, gt_dir=None):
    """This script's one record, for main and run_rounds.py: for --type masks that of the report (gt_dir: the
    ground truth it reads, made here when not given); otherwise that of the logits, done when every logit file is
    still there and the scores of --type were written. None for --type crf without --model_path, which reads the
    last --type test run (main resolves that first)."""
    args = resolve_defaults(args)
    split = default_split(args)
    if args.type == 'masks':
        spec, source = data_source(args)
        gt_dir = gt_dir or ground_truth(args, spec, source, masks_save_path(args))
        return Completion(masks_record(args, spec, source, split, gt_dir))
    if not args.model_path:
        return None
    record = logits_record(args, split)
    scores = layout.scores_file(os.path.dirname(record.folder), args.type)
    return Completion(record, lambda summary: logits_present(record.folder)(summary) and os.path.exists(scores))


def last_test_run(args):
    """`--type crf` without `--model_path`, as the release's second evaluation command: a copy of args with the
    model and logits of the last `--type test` run of this model type started from the working directory, and
    that run's settings where args leaves them unset (args itself is left as it is)."""
    record_path = layout.last_test_record(args.model_type)
    if not os.path.isfile(record_path):
        raise InputError(f'--type crf without --model_path reads the logits of the last `test.py --type test '
                         f'--model_type {args.model_type}` run started from this folder ({os.getcwd()}), and there '
                         f'is none: run that first, or pass --model_path')
    with open(record_path) as handle:
        record = json.load(handle)
    if args.split and args.split != record['split']:
        raise InputError(f'the last --type test run of {args.model_type} started here was on split '
                         f'{record["split"]!r}, not {args.split!r}: pass --model_path')
    print(f'--type crf: using the logits of the last --type test run of {args.model_type} started here: '
          f'{record["save_path"]} (model {record["model_path"]}, split {record["split"]})', flush=True)
    # The settings of that run, unless given again.
    unset = {name: tuple(record[name]) if name == 'scales' and record.get(name) else record.get(name)
             for name in ('test_size', 'amp', 'cuda', 'scales', 'flip') if getattr(args, name) is None}
    return with_values(args, model_path=record['model_path'], save_path=args.save_path or record['save_path'],
                       split=record['split'], **unset)


def remember_test_run(args, save_path, split):
    """Record a --type test run as the last one of its model type started from the working directory: what a
    later --type crf without --model_path reads (last_test_run)."""
    write_json(layout.last_test_record(args.model_type), {
        'model_path': os.path.abspath(args.model_path), 'save_path': os.path.abspath(save_path), 'split': split,
        'test_size': args.test_size, 'amp': args.amp, 'cuda': args.cuda, 'scales': args.scales, 'flip': args.flip})


def check_flags(args):
    """The flag combinations (each value is checked where it is parsed)."""
    if args.type in ('test', 'predict') and not args.model_path:
        raise FlagError(f'--type {args.type} needs --model_path')
    if args.type == 'masks' and not args.pred_dir:
        raise FlagError('--type masks needs --pred_dir, the folders of pseudo masks to score')


@releases_claims
def main(args):
    check_flags(args)
    if args.type == 'crf' and not args.model_path:
        args = last_test_run(args)
    args = resolve_defaults(args)
    spec, source = data_source(args)
    class_names = spec.class_names(source)
    split = default_split(args)
    items = spec.eval_items(source, split, args.split_file)
    ctx = init_distributed(args.cuda)
    if args.type == 'masks':
        gt_dir = ctx.on_main(ground_truth, args, spec, source, masks_save_path(args))
        record = completion(args, gt_dir).record
        return score_pseudo_masks(args, ctx, record, spec, source, split, items, class_names, gt_dir)
    return evaluate_backbone(args, ctx, spec, source, split, items, class_names)


def evaluate_backbone(args, ctx, spec, source, split, items, class_names):
    """--type test, crf and predict: the backbone's logits of every image of the split (those already in the logits
    folder are kept), their record and, for --type test, the record that a later --type crf without --model_path
    reads; then the label maps for the evaluation server (predict) or the scores without and with DenseCRF."""
    precision = Precision(args.amp, ctx.device)
    ctx.print(precision.describe())
    model = load_backbone(args, precision, class_names)  # checked before anything is written
    record = completion(args).record
    save_path = os.path.dirname(record.folder)
    gt_dir = ctx.on_main(ground_truth, args, spec, source, save_path) if args.type != 'predict' else None
    run = logits_of_split(args, ctx, precision, model, record, gt_dir, items)
    if args.type == 'test' and ctx.is_main:
        remember_test_run(args, save_path, split)
    crf_params = asdict(run.backbone.crf_params) if args.type == 'crf' or args.crf else None
    crf_on_padded = args.match_release and run.backbone.pad_to_test_size
    if args.type == 'predict':
        out_dir = predict(args, ctx, items, run.logits_dir, layout.server_results(run.save_path), crf_params,
                          crf_on_padded)
        if args.overlays:
            write_overlays(ctx.shard(items), out_dir, layout.eval_subdir(run.save_path, 'overlays'))
        return out_dir
    return score_backbone(args, ctx, run, split, items, class_names, crf_params, crf_on_padded)


STEP = register_step(ScriptStep('test.py', get_args_parser, completion,
                                 runs_networks=lambda args: args.type in ('test', 'crf')))

if __name__ == '__main__':
    run_script(main, get_args_parser())
