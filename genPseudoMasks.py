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

from datasets.boxes import LPG_SIZE_MULTIPLE, lpg_side
from datasets.custom import write_target_outputs
from datasets.registry import DATASETS, add_source_args, dataset_source, get_dataset
from models.backbones import backbone_names
from models.lpg import SEG_PROBS
from utils.engine import runtime
from utils.engine.distributed import init_distributed
from utils.engine.errors import FlagError, failure_listing
from utils.engine.files import claim_folder, releases_claims, remove_files
from utils.engine.flags import BATCH, JOBS, MAX_SIDE, TEST_SIZE, ScriptParser, count
from utils.engine.precision import Precision, add_amp_arg
from utils.engine.records import Completion, Record, settings_of
from utils.engine.runtime import add_device_args, run_script
from utils.engine.steps import ScriptStep, register_step
from utils.pseudo_masks.compose import OVERLAP_RULES
from utils.pseudo_masks.methods import LPG, METHODS, GenerationJob, add_method_args, get_method, name_list
from utils.pseudo_masks.outputs import INSTANCES, mask_files, nothing_learned, output_files


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--dataset', choices=list(DATASETS), default='voc')
    parser.add_argument('--round', type=count(1), default=1, help='LPG round; round >= 2 reads the round R-1 backbone')
    parser.add_argument('--method', choices=list(METHODS), default=LPG.name,
                        help='; '.join(f'{spec.name}: {spec.help}' for spec in METHODS.values()))
    parser.add_argument('--overlap', choices=OVERLAP_RULES,
                        help='where boxes of several classes claim a pixel: first (the first class keeps it; the '
                        f"release's rule and the default of {name_list(with_rule('first'))}), confidence (the class "
                        'with the highest foreground probability; '
                        f'{name_list(spec for spec in METHODS.values() if spec.probabilities)}), smaller (the smaller '
                        f'box; the default of {name_list(with_rule("smaller"))}). Other than the default, the output '
                        'folder gets the rule as a suffix')
    parser.add_argument('--n_jobs', type=JOBS, default=2, help='parallel image jobs of the methods without a network '
                        f'({name_list(spec for spec in METHODS.values() if not spec.runs_network)})')
    add_method_args(parser)
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
                        help=f'{name_list(spec for spec in METHODS.values() if not spec.max_side)}: an image whose '
                        'longer side exceeds N is read downscaled to N (its boxes with it), and its masks are brought '
                        'back to the image size with nearest resizing, inside the boxes; memory grows with the image '
                        'area (default: every image at its own size, as in the release). Not with '
                        + '; not with '.join(f'{spec.name}: {spec.max_side}' for spec in METHODS.values()
                                             if spec.max_side))
    parser.add_argument('--allow_empty', action='store_true',
                        help=f'{name_list(spec for spec in METHODS.values() if spec.learned)}: finish even when no '
                        'image gets a foreground pixel (by default such a run ends with an error: the generator '
                        'learned nothing)')
    parser.add_argument('--writer_threads', type=JOBS, default=4, help='threads encoding and writing the PNGs')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the masks already in the output folder when they were made from other '
                        'settings or inputs (without it such a folder is refused)')
    add_amp_arg(parser)
    add_device_args(parser, workers=2)
    return parser


def with_rule(rule):
    """The methods whose own overlap rule is `rule`."""
    return [spec for spec in METHODS.values() if spec.overlap == rule]


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
    name, method = args.dataset, get_method(args.method)
    backbone_path = getattr(args, f'init_{name}_model_path')
    if not getattr(args, f'{name}_proposals_dir'):
        raise FlagError(f'--dataset {name} needs --{name}_proposals_dir')
    if args.instances and name != 'custom':
        raise FlagError('--instances writes COCO-format instance masks: it goes with --dataset custom')
    if args.seg_probs == 'uniform' and (not method.generator or args.round < 2 or backbone_path):
        generators = ' or '.join(f'--method {spec.name}' for spec in METHODS.values() if spec.generator)
        raise FlagError('--seg_probs uniform replaces the backbone that a round >= 2 generator reads: use it with '
                        f'{generators}, --round 2 or later, and without --init_{name}_model_path')
    if args.overlap == 'confidence' and not method.probabilities:
        raise FlagError(f'--overlap confidence needs foreground probabilities, which --method {args.method} has not')
    if args.max_side and method.max_side:
        raise FlagError(f'--max_side does not apply to --method {args.method}: {method.max_side}')
    if method.check:
        method.check(args, backbone_path)


def overlap_rule(args):
    return args.overlap or get_method(args.method).overlap


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


def completion(args, flags=None):
    """What these pseudo masks are made from (the settings, the box annotations, the method's checkpoints) and
    whether every mask the record counted is still there: this script's one record, for main and run_rounds.py.
    flags: the dataset's flags, when the caller has read them."""
    flags = flags or dataset_flags(args)
    spec, method = get_dataset(args.dataset), get_method(args.method)
    inputs = dict(spec.box_inputs(flags.source, flags.split, args.split_file))
    if method.inputs:
        inputs.update(method.inputs(args, flags.backbone_path))
    out_dir = method.folder(flags.proposals_dir, args.model_type, args.round, overlap_rule(args), args.seg_probs)
    record = Record(out_dir, settings_of(args, OUTPUT_FLAGS), inputs)
    return Completion(record, lambda summary: len(mask_files(out_dir)) == summary.get('images'))


@releases_claims
def main(args):
    flags = dataset_flags(args)
    method = get_method(args.method)
    if method.check_inputs:
        method.check_inputs(args, f'--method {method.name}')
    ctx = init_distributed(args.cuda)
    precision = Precision(args.amp, ctx.device)
    ctx.print(precision.describe())
    spec = get_dataset(args.dataset)
    done = completion(args, flags)
    record, out_dir = done.record, done.record.folder
    if done.done():
        ctx.print(f'{out_dir}: already made from the same settings and inputs')
        return out_dir
    if method.generator and flags.test_size != lpg_side(flags.test_size):
        ctx.print(f'--{args.dataset}_test_size {flags.test_size}: the generator reads sides that are multiples of '
                  f'{LPG_SIZE_MULTIPLE}, so images are padded to {lpg_side(flags.test_size)} at least')
    # What the run reads is checked before its folder is claimed: a refused run leaves nothing behind.
    networks = method.load(args, precision, spec, flags) if method.load else None
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
    job = GenerationJob(args, ctx, precision, networks, todo, out_dir, overlap_rule(args), flags.test_size)
    failed, oriented = method.generate(job) if todo else ([], 0)
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
    learned = get_method(args.method).learned
    empty = None if failed or args.allow_empty or not learned else nothing_learned(record.folder, args.method,
                                                                                   summary['images'])
    record.write('incomplete' if failed or empty else 'done', summary)
    if empty:
        raise SystemExit(f'error: {empty}')
    if failed:
        raise SystemExit(f'{len(failed)} images failed (the others are written; a rerun retries them):\n  '
                         f'{failure_listing(failed)}')


STEP = register_step(ScriptStep('genPseudoMasks.py', get_args_parser, completion,
                                 runs_networks=lambda args: get_method(args.method).runs_network))

if __name__ == '__main__':
    run_script(main, get_args_parser())
