"""Pseudo masks of every method on real photographs, and the generator's learning curve.

    python benchmarks/real_photos.py --aux COCO_ROOT --target VOC_ROOT --out DIR
    python benchmarks/real_photos.py --coco_json instances_val2017.json --image_dir val2017 --out DIR

--aux is an auxiliary set in the COCO layout (`annotations/instances_<split>.json` with masks, `<split>/` images);
its VOC-class categories (COCO's 20 VOC ids) are left out of the training, as COCO-60 leaves them out. --target is a
VOC-layout folder with boxes (`Annotations/`) and true masks (`SegmentationClassAug/`), scored on --target_split.
With --coco_json alone (COCO's instances_val2017.json, say), the file is split with --split_seed: the images holding
a VOC-class object are the target (their VOC-class annotations give the boxes and the true masks; other objects
are background), the others the auxiliary set (datasets/coco_split.py); no image is on both sides.

The generator (round 1) trains on the auxiliary set for --iterations with the recipe below, saving --curve_points
snapshots; each snapshot's pseudo masks are scored (the learning curve), the last as `lpg_round1`. Beside it: filled
boxes (`box`), GrabCut (`grabcut`), DenseCRF (`crf`) and, with --sam_checkpoint, Segment Anything (`sam`). With
--aux_backbone and --target_backbone (the round-1 backbones of the two sets) a round-2 generator is fine-tuned from
it for --round2_iterations and scored as `lpg_round2`. Each step is a project script in a subprocess (its log in
DIR/logs/), skipped when it finished with the same settings, so an interrupted benchmark continues.

A generator that labels nothing is reported (its recall is 0), not refused as genPseudoMasks.py refuses it.
Writes DIR/real_photos.json: per method its pseudo-mask mIoU and foreground precision and recall inside the boxes,
the curve, the settings, the machine and the time of each step; and prints the table.
"""
import os
import platform
import sys
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from datasets.boxes import LPG_CROP
from datasets.coco_json import load_instances  # noqa: E402
from datasets.coco_split import split_json  # noqa: E402
from datasets.constants import COCO_VOC_IDS  # noqa: E402
from datasets.voc import resolve_voc_root  # noqa: E402
from run_rounds import Runner  # noqa: E402  (importing run_rounds registers the steps it runs)
from utils.engine import layout  # noqa: E402
from utils.engine.errors import FlagError, MissingFile  # noqa: E402
from utils.engine.files import read_json, write_json  # noqa: E402
from utils.engine.flags import (  # noqa: E402
    ITERATIONS,
    JOBS,
    MAX_BATCH,
    POSITIVE,
    SEED,
    TEST_SIZE,
    ScriptParser,
    count,
)
from utils.engine.precision import add_amp_arg, cpu_description  # noqa: E402
from utils.engine.runtime import add_device_args, comma_list, run_script  # noqa: E402
from utils.pseudo_masks.methods import (  # noqa: E402
    LPG,
    METHODS,
    add_method_args,
    baseline_files,
    baseline_methods,
    chosen_baselines,
    default_baselines,
    get_method,
)

TITLES = dict(lpg_round1='LPG round 1', lpg_round2='LPG round 2')
MODEL_TYPE = 'vgg16'  # only names the generator's output folder (and the round-2 backbones' architecture)


def get_args_parser():
    parser = ScriptParser(__doc__)
    data = parser.add_argument_group('data')
    data.add_argument('--aux', help='auxiliary set in the COCO layout (annotations/instances_<aux_split>.json, '
                      '<aux_split>/ images)')
    data.add_argument('--aux_split', default='train2017')
    data.add_argument('--target', help='target set in the VOC layout (boxes and true masks)')
    data.add_argument('--target_split', default='train_aug', help='the target images whose masks are scored')
    data.add_argument('--coco_json', help='one COCO-format json with masks, split into target and auxiliary sides '
                      '(instead of --aux and --target)')
    data.add_argument('--image_dir', help='--coco_json: the folder its file_name entries are relative to')
    data.add_argument('--split_seed', type=SEED, default=0, help='--coco_json: the seed of the split')
    data.add_argument('--max_target', type=count(1), help='--coco_json: at most N target images (seeded choice)')
    data.add_argument('--max_aux', type=count(1), help='--coco_json: at most N auxiliary images (seeded choice)')
    data.add_argument('--out', required=True, help='output folder (DIR/real_photos.json, the masks, the logs)')
    recipe = parser.add_argument_group('the generator\'s training (defaults: the small-budget recipe)')
    recipe.add_argument('--iterations', type=ITERATIONS, default=3000)
    recipe.add_argument('--curve_points', type=count(1), default=6,
                        help='snapshots scored along the run (at most one per iteration)')
    recipe.add_argument('--batch_size', type=count(2, MAX_BATCH), default=8)
    recipe.add_argument('--crop_size', type=LPG_CROP, default=256)
    recipe.add_argument('--lr', type=POSITIVE, default=1e-3)
    recipe.add_argument('--warmup_iterations', type=count(0), default=0)
    recipe.add_argument('--box_loss_weight', type=POSITIVE, default=5.0)
    recipe.add_argument('--seed', type=SEED, default=0)
    recipe.add_argument('--aux_backbone', help='round-1 backbone of the auxiliary set (VGG16, one class per kept '
                        'category + background): with --target_backbone, adds round 2')
    recipe.add_argument('--target_backbone', help='round-1 VOC backbone of the target set (VGG16, 21 classes)')
    recipe.add_argument('--round2_iterations', type=ITERATIONS, default=500)
    recipe.add_argument('--round2_lr', type=POSITIVE, default=1e-4)
    run = parser.add_argument_group('methods and running')
    run.add_argument('--test_size', type=TEST_SIZE, default=384,
                     help='images padded to this size for the generator (rounded up to a multiple of 128)')
    run.add_argument('--baselines', default=','.join(default_baselines()))
    add_method_args(run, baseline_methods())  # sam's --sam_checkpoint adds Segment Anything prompted with the boxes
    run.add_argument('--n_jobs', type=JOBS, default=2, help='parallel images of GrabCut and DenseCRF')
    run.add_argument('--threads', type=JOBS, help='CPU threads of every step (default: PyTorch\'s)')
    run.add_argument('--deterministic', action='store_true', help='deterministic algorithms in training')
    add_amp_arg(parser)
    add_device_args(parser, workers=2)
    return parser


class Sides:
    """The two sets as the scripts read them: the auxiliary set's json, images and left-out categories, and the
    settings that point genPseudoMasks.py and test.py at the target set."""

    def __init__(self, args):
        if args.coco_json:
            aux, target = split_json(args.coco_json, args.split_seed, args.max_target, args.max_aux)
            split_dir = os.path.join(args.out, 'split')
            self.aux_json = os.path.join(split_dir, 'auxiliary.json')
            target_json = os.path.join(split_dir, 'target.json')
            write_json(self.aux_json, aux, indent=None)
            write_json(target_json, target, indent=None)
            self.aux_images, self.exclude = args.image_dir, None
            source = dict(annotations=target_json, image_dir=args.image_dir)
            self.generate = lambda: dict(dataset='custom', **source)
            self.score = lambda: dict(dataset='custom', **source)
            self.proposals_flag, self.size_flag = 'custom_proposals_dir', 'custom_test_size'
            self.sizes = f'{len(aux["images"])} auxiliary and {len(target["images"])} target images'
            return
        self.aux_json = os.path.join(args.aux, 'annotations', f'instances_{args.aux_split}.json')
        self.aux_images = os.path.join(args.aux, args.aux_split)
        if not os.path.isdir(self.aux_images):
            raise MissingFile(f'--aux {args.aux}: no image folder {self.aux_images}')
        instances = load_instances(self.aux_json)
        self.exclude = [name for cat_id, name in instances.categories if cat_id in COCO_VOC_IDS] or None
        voc_root = resolve_voc_root(args.target)
        self.generate = lambda: dict(dataset='voc', voc_root_dir=voc_root, voc_split=args.target_split)
        self.score = lambda: dict(root_path=voc_root, split=args.target_split)
        self.proposals_flag, self.size_flag = 'voc_proposals_dir', 'voc_test_size'
        self.sizes = f'{len(instances.by_image())} auxiliary images, target {voc_root} ({args.target_split})'

    def masks(self, runner, name, folder, **settings):
        """Run genPseudoMasks.py on the target set into `folder`/..., score the masks; returns their scores."""
        a = runner.args
        runner.step(f'{name} masks', 'genPseudoMasks.py', dict(
            **self.generate(), **{self.proposals_flag: folder, self.size_flag: a.test_size}, **settings,
            **runner.common()))
        masks = get_method(settings.get('method', LPG.name)).folder(folder, MODEL_TYPE, settings.get('round'))
        runner.step(f'{name} scores', 'test.py', dict(type='masks', pred_dir=[masks], save_path=folder,
                                                      **self.score()))
        scores = read_json(layout.mask_scores_file(folder, masks))['pseudo masks']
        return {'mIoU': scores['Mean IoU'], 'fg precision in boxes': scores['box foreground']['precision'],
                'fg recall in boxes': scores['box foreground']['recall']}


def train_generator(runner, sides, round_, **settings):
    a = runner.args
    aux = dict(dataset='custom', annotations=sides.aux_json, image_dir=sides.aux_images,
               exclude_categories=sides.exclude, labels_dir=os.path.join(a.out, 'aux_labels'))
    runner.step(f'round {round_}: train LPG', 'trainLPG.py', dict(
        **aux, round=round_, model_save_path=os.path.join(a.out, 'lpg'), resume=True, batch_size=a.batch_size,
        crop_size=a.crop_size, seed=a.seed, **settings, **runner.training(), **runner.common()))


def curve_iterations(args):
    every = max(1, args.iterations // args.curve_points)
    return every, sorted({min(every * k, args.iterations) for k in range(1, args.curve_points + 1)}
                         | {args.iterations})


def check_flags(args):
    """The flag combinations (each value is checked where it is parsed)."""
    if args.coco_json and (args.aux or args.target or not args.image_dir):
        raise FlagError('--coco_json goes with --image_dir, instead of --aux and --target')
    if not args.coco_json and not (args.aux and args.target):
        raise FlagError('give --aux and --target, or --coco_json and --image_dir')
    if bool(args.aux_backbone) != bool(args.target_backbone):
        raise FlagError('round 2 needs both --aux_backbone and --target_backbone')


def main(args):
    tic = time.time()
    check_flags(args)
    # The steps run in the project folder: paths given relative to where this was started must name the same files.
    for name in ('out', 'aux', 'target', 'coco_json', 'image_dir', 'aux_backbone', 'target_backbone',
                 *baseline_files()):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    os.makedirs(args.out, exist_ok=True)
    sides = Sides(args)
    print(f'real photos: {sides.sizes}', flush=True)
    # The benchmark's flags and what utils.step_runner.Runner reads of run_rounds.py's (its steps run as Python
    # subprocesses; a step finished with other settings is redone).
    runner = Runner(SimpleNamespace(**vars(args), work_dir=args.out, launcher=None, nproc_per_node=None,
                                    overwrite=True, from_scratch=None))
    methods = {}
    for method in chosen_baselines(comma_list(args.baselines), args):
        methods[method.name] = sides.masks(runner, method.name, os.path.join(args.out, 'masks'), method=method.name,
                                           n_jobs=args.n_jobs, **method.settings(args))
    every, points = curve_iterations(args)
    train_generator(runner, sides, 1, lr=args.lr, warmup_iterations=args.warmup_iterations,
                    box_loss_weight=args.box_loss_weight, num_max_iterations=args.iterations, num_save_model=every)
    lpg_root = os.path.join(args.out, 'lpg')
    curve = []
    for iteration in points:
        scores = sides.masks(runner, f'LPG round 1, iteration {iteration}',
                             os.path.join(args.out, 'masks', f'lpg_round1_iter{iteration}'), round=1,
                             model_path_test=layout.lpg_weights(lpg_root, 1) if iteration == args.iterations
                             else layout.lpg_snapshot(lpg_root, 1, iteration), allow_empty=True)
        curve.append(dict(iterations=iteration, **scores))
    methods['lpg_round1'] = curve[-1]
    if args.aux_backbone:
        train_generator(runner, sides, 2, lr=args.round2_lr, num_max_iterations=args.round2_iterations,
                        warmup_iterations=0, box_loss_weight=args.box_loss_weight,
                        init_lpg_model_path=layout.lpg_weights(lpg_root, 1), init_seg_model_path=args.aux_backbone)
        methods['lpg_round2'] = sides.masks(runner, 'LPG round 2', os.path.join(args.out, 'masks', 'lpg_round2'),
                                            round=2, model_path_test=layout.lpg_weights(lpg_root, 2), allow_empty=True,
                                            **{f'init_{sides.generate()["dataset"]}_model_path': args.target_backbone})
    result = {'methods': methods, 'curve': curve, 'data': sides.sizes,
              'settings': {k: v for k, v in vars(args).items()},
              'machine': f'{platform.machine()}, Python {platform.python_version()}, {cpu_description()}',
              'step_seconds': runner.times, 'total_seconds': round(time.time() - tic, 1)}
    write_json(os.path.join(args.out, 'real_photos.json'), result)
    print_report(result)
    return result


def print_report(result):
    pct = lambda value: '-' if value is None else f'{100 * value:.1f}'
    print('\n| method | mIoU (%) | fg precision in boxes (%) | fg recall in boxes (%) |\n|---|---|---|---|')
    for name, row in result['methods'].items():
        title = get_method(name).title if name in METHODS else TITLES.get(name, name)
        print(f'| {title} | {pct(row["mIoU"])} | {pct(row["fg precision in boxes"])} | '
              f'{pct(row["fg recall in boxes"])} |')
    print('\n| LPG round 1 after iterations | mIoU (%) | fg precision (%) | fg recall (%) |\n|---|---|---|---|')
    for point in result['curve']:
        print(f'| {point["iterations"]} | {pct(point["mIoU"])} | {pct(point["fg precision in boxes"])} | '
              f'{pct(point["fg recall in boxes"])} |')
    print(f'\n{result["machine"]}; {result["total_seconds"]} s in all')


if __name__ == '__main__':
    run_script(main, get_args_parser())
