"""The whole method on generated data, in about ten minutes on two CPU cores.

    python demo.py                      # writes demo_output/ and Figs/demo_pseudo_masks.png

Makes a small auxiliary dataset in COCO format and a small target dataset in VOC format
(datasets/synthetic/: the COCO-side object shapes differ from the VOC-side ones, so the generator has to
transfer across classes, as in the paper), then runs run_rounds.py on them: parseCOCO, filled-box baseline,
LPG round 1, pseudo masks, the VOC backbone with CRF testing, the COCO-60 backbone and LPG round 2.
Prints a table (pseudo-mask mIoU of filled boxes vs LPG on the VOC training images, backbone val mIoU without
and with CRF, time per step) and writes it to demo_output/demo_results.json. Rerunning skips finished steps.
"""
import argparse
import json
import os
import time

import cv2
import numpy as np

import run_rounds
from datasets.constants import VOC_PALETTE
from datasets.io import read_image_bgr, read_label, write_json
from datasets.synthetic import make_demo_data
from datasets.voc import read_split, split_file, voc_box_items
from utils.layout import RunLayout
from utils.runtime import run_script

HERE = os.path.dirname(os.path.abspath(__file__))


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out_dir', default=os.path.join(HERE, 'demo_output'))
    parser.add_argument('--figs_dir', default=os.path.join(HERE, 'Figs'))
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--num_coco', type=int, default=300, help='generated COCO-format images')
    parser.add_argument('--num_voc_train', type=int, default=80, help='generated VOC training images (boxes only)')
    parser.add_argument('--num_voc_val', type=int, default=40)
    parser.add_argument('--image_size', type=int, default=128)
    parser.add_argument('--lpg_iterations', default='400,100',
                        help='LPG iterations per round (round 2 starts from the round-1 generator)')
    parser.add_argument('--lpg_lr', default='1e-3,1e-4',
                        help='Adam lr of LPG per round: round 1 learns from scratch in few iterations, round 2 '
                        'fine-tunes the round-1 generator (the original uses 1e-4 for 100k iterations)')
    parser.add_argument('--backbone_iterations', type=int, default=80)
    parser.add_argument('--cuda', default='false', help='the demo runs on the CPU by default')
    parser.add_argument('--seed', type=int, default=0)
    return parser


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def colorize(label):
    palette = np.array(VOC_PALETTE, dtype=np.uint8).reshape(-1, 3)
    return palette[label][..., ::-1]  # RGB palette -> BGR for cv2


def save_figure(voc_root, pseudo_dirs, path, num_images=4):
    """Rows of image with boxes | each pseudo mask | ground truth, for the first training images."""
    ids = read_split(split_file(voc_root, 'train_aug'))[:num_images]
    rows = []
    for image_id, _, boxes in voc_box_items(voc_root, ids):
        image = read_image_bgr(os.path.join(voc_root, 'JPEGImages', f'{image_id}.jpg')).astype(np.uint8)
        with_boxes = image.copy()
        for class_id, x1, y1, x2, y2 in boxes:
            color = tuple(int(c) for c in colorize(np.array([class_id]))[0])
            cv2.rectangle(with_boxes, (x1, y1), (x2, y2), color, 2)
        panels = [with_boxes] + [colorize(read_label(os.path.join(d, f'{image_id}.png'))) for d in pseudo_dirs.values()]
        panels.append(colorize(read_label(os.path.join(voc_root, 'SegmentationClassAug', f'{image_id}.png'))))
        rows.append(np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255) for p in panels], 1))
    header = np.full((24, rows[0].shape[1], 3), 255, np.uint8)
    titles = ['image + boxes'] + list(pseudo_dirs) + ['ground truth']
    step = rows[0].shape[1] // len(titles)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * step + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.concatenate([header] + rows, 0))


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


def main(args):
    tic = time.time()
    coco_root, voc_root = demo_data(os.path.join(args.out_dir, 'data'), args)
    data_seconds = round(time.time() - tic, 1)
    work = os.path.join(args.out_dir, 'work')
    pipeline_args = run_rounds.get_args_parser().parse_args([
        '--voc_root_dir', voc_root, '--coco_root_dir', coco_root, '--work_dir', work, '--rounds', str(args.rounds),
        '--lpg_iterations', args.lpg_iterations, '--lpg_lr', args.lpg_lr, '--lpg_batch_size', '8',
        '--lpg_crop_size', '128', '--backbone_iterations', str(args.backbone_iterations), '--backbone_batch_size', '8',
        '--backbone_crop_size', '65', '--voc_test_size', '128', '--coco_test_size', '128', '--eval_test_size', '128',
        '--cuda', args.cuda, '--workers', '1', '--n_jobs', '2', '--from_scratch',
        # the demo's own folder: steps whose data or settings changed are redone
        '--overwrite'])
    summary = run_rounds.main(pipeline_args)

    miou = lambda scores, key: scores[key]['Mean IoU']
    results = {'filled boxes': {'pseudo-mask mIoU': miou(read_json(summary['baseline_scores']), 'pseudo masks')},
               'rounds': {}, 'step_seconds': dict(summary['step_seconds'], **{'make demo data': data_seconds})}
    for r, paths in summary['rounds'].items():
        backbone = read_json(paths['backbone_scores'])
        results['rounds'][r] = {'pseudo-mask mIoU': miou(read_json(paths['pseudo_mask_scores']), 'pseudo masks'),
                                'val mIoU without CRF': miou(backbone, 'without CRF'),
                                'val mIoU with CRF': miou(backbone, 'with CRF')}
    results['total_seconds'] = round(time.time() - tic, 1)

    print('\n| pseudo masks | mIoU on VOC train (%) | backbone val mIoU (%) | + CRF (%) |')
    print('|---|---|---|---|')
    print(f'| filled boxes | {100 * results["filled boxes"]["pseudo-mask mIoU"]:.1f} | - | - |')
    for r, row in results['rounds'].items():
        print(f'| LPG round {r} | {100 * row["pseudo-mask mIoU"]:.1f} | {100 * row["val mIoU without CRF"]:.1f} '
              f'| {100 * row["val mIoU with CRF"]:.1f} |')
    print('\n| step | seconds |\n|---|---|')
    for step, seconds in results['step_seconds'].items():
        print(f'| {step} | {seconds} |')
    print(f'| total | {results["total_seconds"]} |')

    run = RunLayout(work)
    model_type = pipeline_args.model_type
    pseudo_dirs = {'filled boxes': run.pseudo_masks('voc', 'box', model_type, None)}
    for r in results['rounds']:
        pseudo_dirs[f'LPG round {r}'] = run.pseudo_masks('voc', 'lpg', model_type, r)
    figure = os.path.join(args.figs_dir, 'demo_pseudo_masks.png')
    save_figure(voc_root, pseudo_dirs, figure)
    out = os.path.join(args.out_dir, 'demo_results.json')
    write_json(out, results)
    print(f'\nwrote {out} and {figure}')
    return results


if __name__ == '__main__':
    run_script(main, get_args_parser())
