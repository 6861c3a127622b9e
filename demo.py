"""The whole method on generated data, on two CPU cores.

    python demo.py                      # writes demo_output/, Figs/demo_pseudo_masks.png, Figs/demo_training_curves.png

Makes a small auxiliary dataset in COCO format and a small target dataset in VOC format
(datasets/synthetic/: the COCO-side object shapes differ from the VOC-side ones, so the generator has to
transfer across classes, as in the paper), then runs run_rounds.py on them: parseCOCO, the baselines (filled
boxes, GrabCut, DenseCRF on the boxes), LPG round 1, pseudo masks, the VOC backbone with CRF testing, the
COCO-60 backbone and LPG round 2 (--uniform_ablation: round 2 again with uniform probabilities in place of the
backbone's), and the same VOC backbone trained on each baseline's masks and on the ground truth
(--compare_backbones); then the round-1 masks under the other two overlap rules, one comparison report of every
set of pseudo masks, and the figures.

The backbones (DeepLab-LargeFOV VGG16) start from random weights, since no ImageNet file is available offline:
main.py --from_scratch kaiming, lr 3e-3 with a 50-iteration warm-up, batch 8, crop 97, 300 iterations (the
published defaults are ImageNet weights, lr 1e-3, no warm-up, batch 30, crop 321, 20k iterations). LPG trains with
the small-budget recipe: Adam lr 1e-3 for 400 iterations in round 1, batch 8, crop 128, and the pixels inside the
boxes weighted 5 times those outside in its loss (trainLPG.py --box_loss_weight 5; the release: a plain cross
entropy, with which so short a run can settle on background everywhere). A generator that labels no foreground in
any image stops the demo there (--allow_empty goes on).

It prints the report (pseudo-mask quality on the VOC training images), round 2 against its ablation, the
backbones' val mIoU without and with CRF and the time per step, writes them to demo_output/demo_results.json,
and says whether the result falls inside the spread measured over three seeds (benchmarks/demo_spread.json).
The run is deterministic on a given machine (seeds, deterministic algorithms, a fixed thread count); rerunning
skips finished steps.
"""
import os
import time

import torch

import run_rounds
from datasets.constants import VOC_CLASSES
from datasets.io import read_image_bgr, read_label
from datasets.synthetic import make_demo_data
from datasets.voc import read_split, split_file, voc_box_items
from utils.engine import layout
from utils.engine.files import read_json, write_json
from utils.engine.flags import ITERATIONS, JOBS, POSITIVE, SEED, ScriptParser, count, per_round
from utils.engine.layout import RunLayout
from utils.engine.loss_curve import curves_figure, save_figure
from utils.engine.precision import Precision
from utils.engine.runtime import comma_list, run_script, str2bool
from utils.evaluation.visualize import comparison_grid, stack
from utils.pseudo_masks.methods import (
    LPG,
    add_method_args,
    baseline_methods,
    chosen_baselines,
    default_baselines,
    get_method,
)

HERE = os.path.dirname(os.path.abspath(__file__))
SPREAD = os.path.join(HERE, 'benchmarks', 'demo_spread.json')
GROUND_TRUTH = 'ground truth'
UNIFORM = 'uniform probabilities'
MAX_IMAGES = 100_000  # the most images of each generated set


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--out_dir', default=os.path.join(HERE, 'demo_output'))
    parser.add_argument('--figs_dir', default=os.path.join(HERE, 'Figs'))
    parser.add_argument('--rounds', type=count(1), default=2)
    parser.add_argument('--num_coco', type=count(1, MAX_IMAGES), default=300, help='generated COCO-format images')
    parser.add_argument('--num_voc_train', type=count(1, MAX_IMAGES), default=80,
                        help='generated VOC training images (boxes only)')
    parser.add_argument('--num_voc_val', type=count(1, MAX_IMAGES), default=40)
    parser.add_argument('--image_size', type=count(16, 1024), default=128, help='side of the generated images')
    parser.add_argument('--lpg_iterations', type=per_round(ITERATIONS), default='400,100',
                        help='LPG iterations per round (round 2 starts from the round-1 generator)')
    parser.add_argument('--lpg_lr', type=per_round(POSITIVE), default='1e-3,1e-4',
                        help='Adam lr of LPG per round: round 1 learns from scratch in few iterations, round 2 '
                        'fine-tunes the round-1 generator (the original uses 1e-4 for 100k iterations)')
    parser.add_argument('--lpg_box_loss_weight', type=per_round(POSITIVE), default='5',
                        help='trainLPG.py --box_loss_weight per round: the pixels inside the boxes weigh 5 times those '
                        'outside (the release: 1, a plain cross entropy, with which a 400-iteration round 1 can settle '
                        'on background everywhere)')
    parser.add_argument('--allow_empty', action='store_true',
                        help='go on when a generator labels no foreground at all (by default the demo stops there)')
    parser.add_argument('--backbone_iterations', type=ITERATIONS, default=300,
                        help='iterations of every backbone (VGG16 from random weights: 200 reached 30 val mIoU on '
                        'the ground truth, 300 reached 51)')
    parser.add_argument('--cuda', default='false', help='the demo runs on the CPU by default')
    parser.add_argument('--threads', type=JOBS, default=2, help='CPU threads of every step (fixed: same results)')
    parser.add_argument('--seed', type=SEED, default=0, help='seed of the data and of every step')
    parser.add_argument('--baselines', default=','.join(default_baselines()),
                        help='the baselines to compare (comma list); a baseline that needs a flag of its own (sam: '
                        '--sam_checkpoint) joins them when the flag is given')
    add_method_args(parser, baseline_methods())
    return parser


def demo_data(data_dir, args):
    """The generated datasets, made once per set of parameters: a rerun with the same ones keeps the files (and
    so the finished steps that read them)."""
    params = dict(num_coco=args.num_coco, num_voc_train=args.num_voc_train, num_voc_val=args.num_voc_val,
                  image_size=args.image_size, seed=args.seed)
    marker = os.path.join(data_dir, 'demo_data.json')
    if os.path.isfile(marker) and read_json(marker)['params'] == params:
        return read_json(marker)['coco_root'], read_json(marker)['voc_root']
    coco_root, voc_root = make_demo_data(data_dir, **params)
    write_json(marker, {'params': params, 'coco_root': coco_root, 'voc_root': voc_root})
    return coco_root, voc_root


def pipeline_flags(args, voc_root, coco_root, work):
    """run_rounds.py's command line for the demo: its scaled-down settings (the README lists them)."""
    return run_rounds.command_line(
        voc_root_dir=voc_root, coco_root_dir=coco_root, work_dir=work, rounds=args.rounds,
        lpg_iterations=args.lpg_iterations, lpg_lr=args.lpg_lr, lpg_batch_size=8, lpg_crop_size=128,
        lpg_box_loss_weight=args.lpg_box_loss_weight, allow_empty=args.allow_empty,
        backbone_iterations=args.backbone_iterations, backbone_batch_size=8, backbone_crop_size=97, backbone_lr=3e-3,
        backbone_warmup_iterations=50, voc_test_size=128, coco_test_size=128, eval_test_size=128, cuda=args.cuda,
        workers=1, n_jobs=2, from_scratch='kaiming',
        baselines=','.join(spec.name for spec in chosen_baselines(comma_list(args.baselines), args)),
        **{dest: value for spec in baseline_methods() for dest, value in spec.settings(args).items()},
        threads=args.threads,
        deterministic=True, compare_backbones=True, uniform_ablation=True,
        overwrite=True)  # the demo's own folder: steps whose data or settings changed are redone


def overlap_variants(runner, run, voc_root):
    """The round-1 generator's VOC masks under the two other overlap rules. Returns their folders."""
    a, folders = runner.args, {}
    for rule in ('confidence', 'smaller'):
        runner.step(f'round 1: VOC pseudo masks, overlap {rule}', 'genPseudoMasks.py', dict(
            dataset='voc', round=1, model_path_test=run.lpg(1), voc_root_dir=voc_root,
            voc_proposals_dir=run.pseudo_root('voc'), model_type=a.model_type, voc_test_size=128, overlap=rule,
            **runner.generation(), **runner.common()))
        folders[f'LPG round 1, overlap {rule}'] = LPG.folder(run.pseudo_root('voc'), a.model_type, 1, rule)
    return folders


def comparison_report(runner, run, voc_root, folders):
    """One test.py --type masks report of every set of pseudo masks; returns it with the folders' labels."""
    runner.step('compare pseudo masks', 'test.py', dict(
        type='masks', root_path=voc_root, split='train_aug', save_path=run.pseudo_root('voc'),
        report='demo_masks_report', pred_dir=list(folders.values())))
    report = read_json(os.path.join(run.pseudo_root('voc'), 'demo_masks_report.json'))
    by_folder = {os.path.basename(os.path.normpath(d)): label for label, d in folders.items()}
    return {by_folder[name]: scores for name, scores in report['methods'].items()}


def write_figures(args, run, voc_root, folders, rounds):
    """A grid of the first training images (each method's masks and the ground truth) and the loss curves."""
    ids = read_split(split_file(voc_root, 'train_aug'))[:3]
    rows = []
    for image_id, image_path, boxes, frame in voc_box_items(voc_root, ids):
        masks = {label: read_label(os.path.join(d, f'{image_id}.png')) for label, d in folders.items()
                 if 'overlap' not in label}
        gt = read_label(os.path.join(voc_root, 'SegmentationClassAug', f'{image_id}.png'))
        rows.append(comparison_grid(read_image_bgr(image_path, frame), boxes, masks, gt, VOC_CLASSES))
    grid = save_figure(stack(rows), os.path.join(args.figs_dir, 'demo_pseudo_masks.png'))
    logs = {f'LPG round {r}': layout.loss_log(layout.lpg_dir(run.lpg_root(), r)) for r in rounds}
    logs.update({f'VOC backbone round {r}': layout.loss_log(run.backbone_dir('voc', r)) for r in rounds})
    curves = save_figure(curves_figure(logs), os.path.join(args.figs_dir, 'demo_training_curves.png'))
    return grid, curves


def backbone_results(summary, baselines):
    """{masks the backbone was trained on: {'without CRF': val mIoU, 'with CRF': val mIoU}}, in the paper's order:
    the baselines, the rounds, the ground truth; and a line for each backbone that predicts one class everywhere."""
    score_files = {get_method(method).title: summary['other_backbones'][method] for method in baselines}
    score_files.update({f'LPG round {r}': paths['backbone_scores'] for r, paths in summary['rounds'].items()})
    score_files[GROUND_TRUTH] = summary['other_backbones'][run_rounds.GROUND_TRUTH]
    results, collapsed = {}, []
    for masks, path in score_files.items():
        scores = read_json(path)
        results[masks] = {key: scores[key]['Mean IoU'] for key in ('without CRF', 'with CRF')}
        collapsed += [f'the backbone trained on {masks} predicts {name} at every val pixel ({key}): it learned nothing'
                      for key, name in scores.get('one class everywhere', {}).items()]
    return results, collapsed


def result_rows(results):
    """Every figure of a demo result by the name its spread row has: the pseudo masks' mIoU by their name, the
    backbones' val mIoU as 'backbone on <masks>, without CRF' / 'with CRF'."""
    rows = {name: row['Mean IoU'] for name, row in results['pseudo masks'].items()}
    rows.update({f'backbone on {masks}, {key}': value for masks, row in results['backbones'].items()
                 for key, value in row.items()})
    return rows


def read_spreads(path):
    """{precision: spread} from a spread file; {} when there is none. A file of one spread (the earlier format,
    with 'rows' at the top) counts as the spread of its precision."""
    if not os.path.isfile(path):
        return {}
    data = read_json(path)
    if 'rows' in data:
        return {data.get('precision', 'fp32'): data}
    return data['spreads']


def within_spread(results):
    """Lines saying whether each demo figure lies inside the spread of benchmarks/demo_spread.json (mean +- 3
    std of three seeds)."""
    spreads = read_spreads(SPREAD)
    if not spreads:
        return ['no benchmarks/demo_spread.json to compare with']
    lines = []
    spread = spreads.get(results['precision'])
    if spread is None:
        spread = next(iter(spreads.values()))
        lines.append(f'note: this run computed in {results["precision"]}, the only spread measured is in '
                     f'{spread["precision"]}: the two precisions round differently, so a figure can fall outside '
                     'without anything being wrong')
    lines.append(f'the spread of {spread["precision"]} runs, measured on {spread["machine"]}:')
    values = result_rows(results)
    for name, stats in spread['rows'].items():
        value = values.get(name)
        if value is None:
            continue
        low, high = stats['mean'] - 3 * stats['std'], stats['mean'] + 3 * stats['std']
        verdict = 'inside' if low <= value <= high else 'OUTSIDE'
        lines.append(f'{name}: {100 * value:.1f} mIoU, {verdict} the spread of three seeds '
                     f'({100 * stats["mean"]:.1f} +- {100 * stats["std"]:.1f})')
    return lines


def print_alternation(masks, rounds, percent):
    """Each round >= 2 generator as the method runs it (reading the previous backbone's probabilities) beside the
    same fine-tuning with uniform probabilities: the part of the round's gain that comes from the backbone."""
    for r in (r for r in rounds if r >= 2):
        before, method = masks[f'LPG round {r - 1}']['Mean IoU'], masks[f'LPG round {r}']['Mean IoU']
        ablation = masks[f'LPG round {r}, {UNIFORM}']['Mean IoU']
        print(f'\n| round {r} generator, fine-tuned from round {r - 1} | pseudo-mask mIoU (%) |\n|---|---|')
        print(f'| round {r - 1} (before) | {percent(before)} |')
        print(f'| reading the round-{r - 1} backbone (the method) | {percent(method)} |')
        print(f'| reading {UNIFORM} (the ablation) | {percent(ablation)} |')
        print(f'round {r}: {100 * (method - before):+.1f} points over round {r - 1}, of which '
              f'{100 * (method - ablation):+.1f} come from reading the backbone')


def main(args):
    tic = time.time()
    torch.set_num_threads(args.threads)
    # What --amp auto chooses for every network step on this machine (each step logs it too).
    device = torch.device('cuda' if str2bool(args.cuda) and torch.cuda.is_available() else 'cpu')
    precision = Precision('auto', device)
    print(precision.describe(), flush=True)
    for spec in baseline_methods():
        if spec.missing and not spec.available(args):
            print(spec.missing, flush=True)
    coco_root, voc_root = demo_data(os.path.join(args.out_dir, 'data'), args)
    data_seconds = round(time.time() - tic, 1)
    work = os.path.join(args.out_dir, 'work')
    pipeline_args = run_rounds.get_args_parser().parse_args(pipeline_flags(args, voc_root, coco_root, work))
    summary = run_rounds.main(pipeline_args)
    run, runner = RunLayout(work), run_rounds.Runner(pipeline_args)
    rounds = [int(r) for r in summary['rounds']]
    model_type = pipeline_args.model_type
    folders = {get_method(method).title: get_method(method).folder(run.pseudo_root('voc'))
               for method in pipeline_args.baselines}
    folders.update({f'LPG round {r}': LPG.folder(run.pseudo_root('voc'), model_type, r) for r in rounds})
    folders.update({f'LPG round {r}, {UNIFORM}': LPG.folder(run.pseudo_root('voc'), model_type, r, seg_probs='uniform')
                    for r in rounds if r >= 2})
    folders.update(overlap_variants(runner, run, voc_root))
    backbones, collapsed = backbone_results(summary, pipeline_args.baselines)
    results = {'pseudo masks': comparison_report(runner, run, voc_root, folders), 'backbones': backbones,
               'collapsed backbones': collapsed, 'precision': precision.label}
    results['step_seconds'] = dict(summary['step_seconds'], **runner.times, **{'make demo data': data_seconds})
    figures = write_figures(args, run, voc_root, folders, rounds)
    results['total_seconds'] = round(time.time() - tic, 1)

    percent = lambda v: '-' if v is None else f'{100 * v:.1f}'
    print('\n| pseudo masks on the VOC training images | mIoU (%) | fg precision in boxes (%) '
          '| fg recall in boxes (%) |')
    print('|---|---|---|---|')
    for name, scores in results['pseudo masks'].items():
        fg = scores['box foreground']
        print(f'| {name} | {percent(scores["Mean IoU"])} | {percent(fg["precision"])} | {percent(fg["recall"])} |')
    print_alternation(results['pseudo masks'], rounds, percent)
    print('\n| VOC backbone trained on | val mIoU (%) | + CRF (%) |\n|---|---|---|')
    for masks, row in results['backbones'].items():
        print(f'| {masks} | {percent(row["without CRF"])} | {percent(row["with CRF"])} |')
    print(f'({GROUND_TRUTH}: the fully supervised upper bound, trained on the true masks instead of boxes)')
    print(''.join(f'warning: {line}\n' for line in collapsed), end='')
    print('\n| step | seconds |\n|---|---|')
    for step, seconds in results['step_seconds'].items():
        print(f'| {step} | {seconds} |')
    print(f'| total | {results["total_seconds"]} |\n\n{precision.describe()}')
    results['spread'] = within_spread(results)
    print('\n'.join(results['spread']))
    out = os.path.join(args.out_dir, 'demo_results.json')
    write_json(out, results)
    print(f'\nwrote {out}, {figures[0]} and {figures[1]}')
    return results


if __name__ == '__main__':
    run_script(main, get_args_parser())
