"""The demo's round-1 generator over seeds, with and without the small-budget recipe's loss.

    python benchmarks/round1_seeds.py --seeds 0,1,2,3,4 --box_loss_weights 1,5     # about 100 s a run on 2 cores

For each seed: the demo's generated data of that seed (datasets/synthetic, the demo's sizes), then round 1 as the
demo trains it (Adam lr 1e-3, 400 iterations, batch 8, crop 128, --deterministic, that seed) with each
trainLPG.py --box_loss_weight (1 is the release's plain cross entropy), its VOC pseudo masks at test size 128 and
their scores. A generator that labels nothing is scored too (--allow_empty). Writes benchmarks/round1_seeds.json
(per run: mIoU, foreground precision and recall inside the boxes, training seconds) and prints the table.
"""
import argparse
import os
import platform
import sys
from types import SimpleNamespace

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from datasets.synthetic import make_demo_data  # noqa: E402
from run_rounds import Runner  # noqa: E402  (importing run_rounds registers the steps it runs)
from utils.engine import layout  # noqa: E402
from utils.engine.files import read_json, write_json  # noqa: E402
from utils.engine.precision import cpu_description  # noqa: E402
from utils.pseudo_masks.methods import LPG  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', default='0,1,2,3,4')
    parser.add_argument('--box_loss_weights', default='1,5')
    parser.add_argument('--amp', default='auto')
    parser.add_argument('--work_dir', default=os.path.join(HERE, 'demo_output', 'round1_seeds'))
    parser.add_argument('--out', default=os.path.join(HERE, 'benchmarks', 'round1_seeds.json'))
    args = parser.parse_args()
    runner = Runner(SimpleNamespace(work_dir=args.work_dir, cuda=False, workers=1, amp=args.amp, threads=2,
                                    launcher=None, nproc_per_node=None, overwrite=True, deterministic=True,
                                    from_scratch=None))
    runs = []
    for seed in (int(s) for s in args.seeds.split(',')):
        data = os.path.join(args.work_dir, f'data_seed{seed}')
        coco, voc = make_demo_data(data, num_coco=300, num_voc_train=80, num_voc_val=40, image_size=128, seed=seed)
        runner.step(f'seed {seed}: parse COCO', os.path.join('utils', 'parseCOCO.py'), dict(dataRoot=coco))
        for weight in (float(w) for w in args.box_loss_weights.split(',')):
            name = f'seed {seed}, box loss weight {weight:g}'
            out = os.path.join(args.work_dir, f'seed{seed}_weight{weight:g}')
            runner.step(f'{name}: train LPG', 'trainLPG.py', dict(
                coco_root_dir=coco, round=1, model_save_path=out, batch_size=8, crop_size=128, lr=1e-3,
                num_max_iterations=400, num_save_model=400, seed=seed, box_loss_weight=weight, **runner.training(),
                **runner.common()))
            runner.step(f'{name}: VOC pseudo masks', 'genPseudoMasks.py', dict(
                dataset='voc', round=1, model_path_test=layout.lpg_weights(out, 1), voc_root_dir=voc,
                voc_proposals_dir=out, voc_test_size=128, allow_empty=True, **runner.common()))
            masks = LPG.folder(out, 'vgg16', 1)
            runner.step(f'{name}: score', 'test.py', dict(type='masks', root_path=voc, pred_dir=[masks], save_path=out))
            scores = read_json(layout.mask_scores_file(out, masks))['pseudo masks']
            runs.append(dict(seed=seed, box_loss_weight=weight, mIoU=scores['Mean IoU'],
                             fg_precision=scores['box foreground']['precision'],
                             fg_recall=scores['box foreground']['recall'],
                             train_seconds=runner.times.get(f'{name}: train LPG')))
    machine = f'{platform.machine()}, Python {platform.python_version()}, {cpu_description()}'
    write_json(args.out, {'machine': machine, 'amp': args.amp, 'runs': runs})
    pct = lambda value: '-' if value is None else f'{100 * value:.1f}'
    print('\n| seed | --box_loss_weight | mIoU (%) | fg precision in boxes (%) | fg recall in boxes (%) |')
    print('|---|---|---|---|---|')
    for run in runs:
        print(f'| {run["seed"]} | {run["box_loss_weight"]:g} | {pct(run["mIoU"])} | {pct(run["fg_precision"])} | '
              f'{pct(run["fg_recall"])} |')
    print(f'\n{machine}; wrote {args.out}')


if __name__ == '__main__':
    main()
