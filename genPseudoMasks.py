r"""Turn boxes into pseudo masks with a trained LPG generator (or a baseline: filled boxes, GrabCut, DenseCRF,
Segment Anything prompted with the boxes).

    python genPseudoMasks.py --dataset voc --round 1 --model_path_test LPG_Round1.pth \
        --voc_root_dir VOC2012 --voc_proposals_dir OUT --model_type vgg16
    python genPseudoMasks.py --dataset voc --round 2 --model_path_test LPG_Round2.pth \
        --voc_root_dir VOC2012 --voc_proposals_dir OUT --model_type vgg16 --init_voc_model_path VOC_Round1.pth

Writes `<proposals_dir>/<model_type>_Round<R>/ID.png` (VOC palette); the baselines
(`--method box|grabcut|crf|sam`) write `<proposals_dir>/<method>/`, and an overlap rule other than the method's
default adds `_<rule>`.
The folder's record.json, written last, names the settings, annotations and checkpoints the masks come from: a
rerun with the same ones skips the images already written (an interrupted run continues where it stopped), one
with others is refused unless --overwrite. An image that cannot be read is reported and the others go on; the
run then exits non-zero.
Every dataset has its own flags: `--<dataset>_root_dir`, `--<dataset>_proposals_dir`,
`--init_<dataset>_model_path`, `--<dataset>_test_size` and `--<dataset>_split`.
"""
import os
from typing import NamedTuple, Optional

from joblib import Parallel, delayed
from tqdm import tqdm

from datasets.boxes import LPG_SIZE_MULTIPLE, lpg_side
from datasets.custom import write_target_outputs
from datasets.registry import DATASETS, add_source_args, dataset_source, get_dataset
from models.backbones import backbone_names
from models.lpg import SEG_PROBS
from utils.engine import layout, runtime
from utils.engine.distributed import init_distributed
from utils.engine.errors import FlagError, failure_listing
from utils.engine.files import claim_folder, releases_claims, remove_files
from utils.engine.flags import BATCH, JOBS, MAX_SIDE, TEST_SIZE, ScriptParser, count
from utils.engine.precision import Precision, add_amp_arg
from utils.engine.records import Record, settings_of
from utils.engine.runtime import add_device_args, run_script
from utils.pseudo_masks.baselines import baseline_image
from utils.pseudo_masks.compose import OVERLAP_RULES
from utils.pseudo_masks.generator import generate_lpg, load_generator
from utils.pseudo_masks.outputs import INSTANCES, mask_files, nothing_learned, output_files
from utils.pseudo_masks.sam import SAM_CHECKPOINTS, SAM_MODELS, SAM_OUTPUTS, check_sam_inputs, generate_sam, load_sam


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--dataset', choices=list(DATASETS), default='voc')
    parser.add_argument('--round', type=count(1), default=1, help='LPG round; round >= 2 reads the round R-1 backbone')
    parser.add_argument('--method', choices=list(METHODS), default='lpg',
                        help='lpg: the learned generator; baselines: box (filled boxes), grabcut (OpenCV GrabCut from '
                        'each box), crf (DenseCRF on a unary built from the boxes), sam (Segment Anything prompted '
                        'with each box; needs the segment-anything package and --sam_checkpoint)')
    parser.add_argument('--overlap', choices=OVERLAP_RULES,
                        help='where boxes of several classes claim a pixel: first (the first class keeps it; the '
                        "release's rule and the default of lpg), confidence (the class with the highest foreground "
                        'probability; lpg, crf and sam), smaller (the smaller box; the default of the baselines). '
                        'Other than the default, the output folder gets the rule as a suffix')
    parser.add_argument('--n_jobs', type=JOBS, default=2, help='parallel image jobs of the box, grabcut and crf '
                        'baselines')
    add_sam_args(parser)
    parser.add_argument('--model_path_test', help='LPG checkpoint of this round')
    parser.add_argument('--seg_probs', choices=SEG_PROBS, default='backbone',
                        help='round >= 2: where the probability channel comes from: backbone (the method: the '
                        'round R-1 backbone, --init_<dataset>_model_path), or uniform (1 / classes everywhere, no '
                        'backbone; for a generator trained with trainLPG.py --seg_probs uniform; the output folder '
                        'gets _uniform)')
    parser.add_argument('--model_type', choices=backbone_names(), default='vgg16',
                        help='backbone architecture of the round R-1 segmentation model (and the output folder name)')
    add_per_dataset_args(parser)
    add_source_args(parser, 'a COCO-format json with the boxes (any categories)')
    parser.add_argument('--instances', action='store_true',
                        help='--dataset custom: one mask per box annotation, the generator run on that box alone '
                        '(touching objects of a class stay apart), in pseudo_masks.json; a crowd box (iscrowd 1) '
                        'gets its mask too and keeps iscrowd 1 there; the PNGs still hold classes')
    parser.add_argument('--split_file', help='image id list to use instead of the dataset split')
    parser.add_argument('--batch_size', type=BATCH, default=16, help='(image, class) pairs per generator forward')
    parser.add_argument('--image_batch_size', type=BATCH, default=8,
                        help='images per loader batch: one backbone forward for all of them; their (image, class) '
                        'pairs fill the generator batches')
    parser.add_argument('--max_side', type=count(MIN_MAX_SIDE, MAX_SIDE),
                        help='lpg, box, grabcut, crf: an image whose longer side exceeds N is read downscaled to N '
                        '(its boxes with it), and its masks are brought back to the image size with nearest resizing, '
                        'inside the boxes; memory grows with the image area (default: every image at its own size, '
                        'as in the release). Not with sam, which reads every image at 1024 on its longer side')
    parser.add_argument('--allow_empty', action='store_true',
                        help='lpg and sam: finish even when no image gets a foreground pixel (by default such a run '
                        'ends with an error: the generator learned nothing)')
    parser.add_argument('--writer_threads', type=JOBS, default=4, help='threads encoding and writing the PNGs')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the masks already in the output folder when they were made from other '
                        'settings or inputs (without it such a folder is refused)')
    add_amp_arg(parser)
    add_device_args(parser, workers=2)
    return parser


def add_sam_args(parser):
    """--method sam: the weights, the network and which of its outputs a box takes."""
    parser.add_argument('--sam_checkpoint', help='--method sam: the SAM weights file (e.g. Meta\'s '
                        f'{SAM_CHECKPOINTS["vit_h"][0]}); nothing is downloaded')
    parser.add_argument('--sam_model', choices=list(SAM_MODELS),
                        help='--method sam: the SAM network the checkpoint holds (default: the one whose image '
                        'encoder width the file holds)')
    parser.add_argument('--sam_output', choices=SAM_OUTPUTS, default='single',
                        help="--method sam: each box's mask is SAM's single-mask output (single), or the best of its "
                        'three multimask outputs by predicted IoU (best) (default %(default)s)')


def add_per_dataset_args(parser):
    """Every dataset's own flags: its root, output folder, round R-1 backbone, test size and split."""
    for spec in DATASETS.values():
        name = spec.name
        if 'root' in spec.source_flags:
            parser.add_argument(f'--{name}_root_dir', help=spec.root_help)
        parser.add_argument(f'--{name}_proposals_dir', help=f'output folder for {spec.title} pseudo masks')
        classes = f'{spec.num_classes} classes' if spec.num_classes else 'a class per category of the file'
        parser.add_argument(f'--init_{name}_model_path',
                            help=f'round R-1 {spec.title} backbone ({classes}), round >= 2')
        parser.add_argument(f'--{name}_test_size', type=TEST_SIZE, default=spec.test_size,
                            help='images are padded (bottom/right) to this size, or to the image\'s side where it '
                            'is longer, rounded up to a multiple of 128: the generator reads sides that are multiples '
                            'of 128, so 320 pads as 384 (default %(default)s)')
        parser.add_argument(f'--{name}_split', default=spec.default_split,
                            help=f'{spec.title} split (default %(default)s)')


def command_line(**settings):
    """This script's argv for {flag's dest: value} (utils.engine.runtime.command_line): how run_rounds.py and demo.py
    build its commands."""
    return runtime.command_line(get_args_parser(), **settings)


class DatasetFlags(NamedTuple):
    """The per-dataset flags of the chosen dataset, read once: its source (root folder, or annotations and image
    folder), output folder, round R-1 backbone, test size and split."""
    source: dict
    proposals_dir: str
    backbone_path: Optional[str]
    test_size: int
    split: Optional[str]


def dataset_flags(args) -> DatasetFlags:
    """The chosen dataset's flags, after checking them (check_flags) and its source."""
    check_flags(args)
    name = args.dataset
    _, source = dataset_source(name, getattr(args, f'{name}_root_dir', None), args.annotations, args.image_dir)
    return DatasetFlags(source, getattr(args, f'{name}_proposals_dir'), getattr(args, f'init_{name}_model_path'),
                        getattr(args, f'{name}_test_size'), getattr(args, f'{name}_split'))


def check_flags(args):
    """The flag combinations (each value is checked where it is parsed), before anything is read or written."""
    name = args.dataset
    backbone_path = getattr(args, f'init_{name}_model_path')
    if not getattr(args, f'{name}_proposals_dir'):
        raise FlagError(f'--dataset {name} needs --{name}_proposals_dir')
    if args.instances and name != 'custom':
        raise FlagError('--instances writes COCO-format instance masks: it goes with --dataset custom')
    if args.seg_probs == 'uniform' and (args.method != 'lpg' or args.round < 2 or backbone_path):
        raise FlagError('--seg_probs uniform replaces the backbone that a round >= 2 generator reads: use it with '
                        f'--method lpg, --round 2 or later, and without --init_{name}_model_path')
    if args.overlap == 'confidence' and args.method not in ('lpg', 'crf', 'sam'):
        raise FlagError(f'--overlap confidence needs foreground probabilities, which --method {args.method} has not')
    if args.max_side and args.method == 'sam':
        raise FlagError('--max_side does not apply to --method sam: SAM reads every image at 1024 on its longer side '
                        'whatever its size (its memory grows with the image only through the masks, one image-sized '
                        'mask per box)')
    if args.method == 'lpg':
        check_generator_flags(args, backbone_path)


def overlap_rule(args):
    return args.overlap or METHODS[args.method]


def check_generator_flags(args, backbone_path):
    """--method lpg: the generator's checkpoint and, from round 2 on, the backbone it reads are given."""
    if not args.model_path_test:
        raise FlagError('--model_path_test (the LPG checkpoint) is required with --method lpg')
    if args.round >= 2 and args.seg_probs != 'uniform' and not backbone_path:
        raise FlagError(f'--round {args.round} reads the round {args.round - 1} backbone: '
                        f'pass --init_{args.dataset}_model_path')


# The methods and the overlap rule each uses unless told otherwise.
METHODS = {'lpg': 'first', 'box': 'smaller', 'grabcut': 'smaller', 'crf': 'smaller', 'sam': 'smaller'}

# The smallest --max_side: a box of a downscaled image should still cover a few pixels.
MIN_MAX_SIDE = 32

# Which flags shape the masks (the completion record holds them: the precision and the device too, since they
# round differently), and which only change how generation runs. tests/test_records.py fails on a flag that is in
# neither.
OUTPUT_FLAGS = frozenset({
    'amp', 'annotations', 'coco_proposals_dir', 'coco_root_dir', 'coco_split', 'coco_test_size', 'cuda',
    'custom_proposals_dir', 'custom_split', 'custom_test_size', 'dataset', 'image_dir', 'init_coco_model_path',
    'init_custom_model_path', 'init_voc_model_path', 'instances', 'max_side', 'method', 'model_path_test',
    'model_type', 'overlap', 'round', 'sam_checkpoint', 'sam_model', 'sam_output', 'seg_probs', 'split_file',
    'voc_proposals_dir', 'voc_root_dir', 'voc_split', 'voc_test_size'})
RUNTIME_FLAGS = frozenset({'allow_empty', 'workers', 'writer_threads', 'batch_size', 'image_batch_size', 'overwrite',
                           'n_jobs'})


def step_record(args, flags):
    """What these pseudo masks are made from: the settings, the box annotations, the generator and backbone."""
    spec = get_dataset(args.dataset)
    inputs = dict(spec.box_inputs(flags.source, flags.split, args.split_file))
    if args.method == 'lpg':
        inputs.update(lpg=args.model_path_test, backbone=flags.backbone_path if args.round >= 2 else None)
    if args.method == 'sam':
        inputs.update(sam=args.sam_checkpoint)
    out_dir = layout.pseudo_mask_dir(flags.proposals_dir, args.method, args.model_type, args.round,
                                     overlap_rule(args) if overlap_rule(args) != METHODS[args.method] else None,
                                     args.seg_probs)
    return Record(out_dir, settings_of(args, OUTPUT_FLAGS), inputs)


def step_done(args):
    """Whether these masks were all made already from the same settings and inputs (run_rounds.py asks)."""
    return masks_done(step_record(args, dataset_flags(args)))


def masks_done(record):
    """The record says done with the same settings and inputs, and every mask it counted is still there."""
    return record.is_done(lambda summary: len(mask_files(record.folder)) == summary.get('images'))


@releases_claims
def main(args):
    flags = dataset_flags(args)
    if args.method == 'sam':
        check_sam_inputs(args.sam_checkpoint)
    ctx = init_distributed(args.cuda)
    precision = Precision(args.amp, ctx.device)
    ctx.print(precision.describe())
    spec = get_dataset(args.dataset)
    record = step_record(args, flags)
    out_dir = record.folder
    if masks_done(record):
        ctx.print(f'{out_dir}: already made from the same settings and inputs')
        return out_dir
    if args.method == 'lpg' and flags.test_size != lpg_side(flags.test_size):
        ctx.print(f'--{args.dataset}_test_size {flags.test_size}: the generator reads sides that are multiples of '
                  f'{LPG_SIZE_MULTIPLE}, so images are padded to {lpg_side(flags.test_size)} at least')
    # What the run reads is checked before its folder is claimed: a refused run leaves nothing behind.
    networks = load_networks(args, precision, spec, flags)
    unreadable = []
    items = spec.box_items(flags.source, flags.split, args.split_file, errors=unreadable)

    def begin():
        claim_folder(out_dir)
        record.begin(bool(mask_files(out_dir)), args.overwrite, what='pseudo masks',
                     clear=lambda: remove_files(output_files(out_dir) + [record.path]))
    ctx.on_main(begin)
    ctx.barrier()
    # Each process takes its shard first and then skips what exists, so no process sees another's new files.
    todo = [item for item in ctx.shard(items) if not os.path.exists(os.path.join(out_dir, f'{item.image_id}.png'))]
    remaining = sum(ctx.all_gather_objects(len(todo)))
    ctx.print(f'{len(items) + len(unreadable)} images, {len(items) - remaining} already done, writing to {out_dir}'
              + (f' ({ctx.world_size} processes)' if ctx.distributed else ''))
    failed, oriented = generate(args, ctx, precision, flags, networks, todo, out_dir) if todo else ([], 0)
    failed = [failure for failures in ctx.all_gather_objects(failed) for failure in failures]
    summary = {'images': len(items) + len(unreadable), 'written': remaining - len(failed),
               'already done': len(items) - remaining, 'failed': dict(failed + unreadable),
               'with an EXIF orientation tag': sum(ctx.all_gather_objects(oriented))}
    ctx.on_main(finish, args, flags, record, summary)
    return out_dir


def finish(args, flags, record, summary):
    """The summary line, for --dataset custom the class table and COCO-format json, the completion record
    (written last), and a non-zero exit if any image failed or a learned method labelled no foreground at all."""
    failed, oriented = summary['failed'], summary['with an EXIF orientation tag']
    print(f'{summary["images"]} images: {summary["written"]} written, {summary["already done"]} already done, '
          f'{len(failed)} failed')
    if oriented:
        print(f'{oriented} of the images written carry an EXIF orientation tag: each was read in the pixel frame its '
              'annotation gives boxes in (the stored one, or turned where only the turned size matches its '
              'declared size)')
    if args.dataset == 'custom':
        instances = os.path.join(record.folder, INSTANCES) if args.instances else None
        print(f'wrote {write_target_outputs(flags.source["annotations"], record.folder, instances)}')
    empty = None if failed or args.allow_empty else nothing_learned(record.folder, args.method, summary['images'])
    record.write('incomplete' if failed or empty else 'done', summary)
    if empty:
        raise SystemExit(f'error: {empty}')
    if failed:
        raise SystemExit(f'{len(failed)} images failed (the others are written; a rerun retries them):\n  '
                         f'{failure_listing(failed)}')


def load_networks(args, precision, spec, flags):
    """The networks of the method, their checkpoints checked: (generator, backbone or None) for lpg, the SAM
    predictor for sam, None for the other baselines."""
    if args.method == 'sam':
        return load_sam(args.sam_model, args.sam_checkpoint, precision)
    if args.method == 'lpg':
        return load_generator(args.model_path_test, args.round, precision, args.seg_probs, flags.backbone_path,
                              args.model_type, len(spec.class_names(flags.source)))
    return None


def generate(args, ctx, precision, flags, networks, todo, out_dir):
    """Pseudo masks of this process's images. Returns the (image_id, reason) of the images that failed, and how
    many of those written carry an EXIF orientation tag.

    The generator: generate_lpg. SAM: generate_sam, an image at a time on the device. The other baselines: one job
    per image, --n_jobs in parallel."""
    if args.method == 'sam':
        return generate_sam(networks, todo, out_dir, precision, overlap_rule(args), args.sam_output, args.instances,
                            args.workers, args.writer_threads, progress=ctx.is_main)
    if args.method != 'lpg':
        jobs = Parallel(n_jobs=args.n_jobs)(
            delayed(baseline_image)(args.method, item, out_dir, overlap_rule(args), args.instances, args.max_side)
            for item in tqdm(todo, desc=f'pseudo masks ({args.method})', unit='img', disable=not ctx.is_main))
        return [failure for _, failure in jobs if failure], sum(tag not in (None, 1) for tag, _ in jobs)
    lpg, backbone = networks
    return generate_lpg(lpg, backbone, todo, out_dir, ctx.device, precision, test_size=flags.test_size,
                        max_side=args.max_side,
                        rule=overlap_rule(args), pair_batch=args.batch_size, image_batch=args.image_batch_size,
                        workers=args.workers, writer_threads=args.writer_threads, per_box=args.instances,
                        progress=ctx.is_main)


if __name__ == '__main__':
    run_script(main, get_args_parser())
