r"""How close bf16 autocast stays to float32, with the demo's trained networks.

    python demo.py && python benchmarks/bf16_agreement.py --demo_dir demo_output

Reruns two steps of a finished demo with `--amp off` (float32) and `--amp bf16`, each through the script a
user runs: the round-2 VOC pseudo masks (`genPseudoMasks.py`, the trained round-2 generator reading the
round-1 VOC backbone) and the round-2 VOC backbone's test (`test.py --type test`). It prints and writes
(benchmarks/bf16_agreement.json) the fraction of pseudo-mask pixels that bf16 labels like float32, the
pseudo-mask mIoU in both, the fraction of backbone predictions alike, and the backbone's val mIoU in both.
On a CPU without bf16 matrix units bf16 is emulated: the numbers hold, the speed does not.
"""
import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from datasets.io import read_label
from datasets.voc import resolve_voc_root
from utils.engine import layout
from utils.engine.layout import RunLayout
from utils.pseudo_masks.methods import LPG

PRECISIONS = {'fp32': 'off', 'bf16': 'bf16'}


def run(script, *flags):
    command = [sys.executable, os.path.join(REPO, script)] + [str(flag) for flag in flags]
    print('$', ' '.join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def pixels_alike(folder_a, folder_b, suffix='.png'):
    names = sorted(name for name in os.listdir(folder_a) if name.endswith(suffix))
    same = total = 0
    for name in names:
        a, b = read_label(os.path.join(folder_a, name)), read_label(os.path.join(folder_b, name))
        same, total = same + int((a == b).sum()), total + a.size
    return same / total, len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--demo_dir', default=os.path.join(REPO, 'demo_output'))
    parser.add_argument('--test_size', type=int, default=128, help="the demo's image and test size")
    parser.add_argument('--out', default=os.path.join(REPO, 'benchmarks', 'bf16_agreement.json'))
    args = parser.parse_args()
    work, out = RunLayout(os.path.join(args.demo_dir, 'work')), os.path.join(args.demo_dir, 'bf16_agreement')
    voc = resolve_voc_root(os.path.join(args.demo_dir, 'data', 'VOCdevkit', 'VOC2012'))
    result = {'demo_dir': os.path.abspath(args.demo_dir), 'command': ' '.join(sys.argv)}

    masks, mask_scores = {}, {}
    for label, amp in PRECISIONS.items():
        proposals = os.path.join(out, f'masks_{label}')
        run('genPseudoMasks.py', '--dataset', 'voc', '--round', 2, '--model_path_test', work.lpg(2),
            '--init_voc_model_path', work.backbone('voc', 'vgg16', 1), '--voc_root_dir', voc,
            '--voc_proposals_dir', proposals, '--voc_split', 'train_aug', '--voc_test_size', args.test_size,
            '--cuda', 'false', '--workers', 1, '--amp', amp, '--overwrite')
        masks[label] = LPG.folder(proposals, 'vgg16', 2)
        run('test.py', '--type', 'masks', '--root_path', voc, '--pred_dir', masks[label], '--split', 'train_aug',
            '--save_path', proposals, '--overwrite')
        with open(layout.mask_scores_file(proposals, masks[label])) as handle:
            mask_scores[label] = json.load(handle)['pseudo masks']['Mean IoU']
    alike, images = pixels_alike(masks['fp32'], masks['bf16'])
    result['pseudo_masks'] = dict(images=images, pixels_alike=alike, miou=mask_scores,
                                  step='round 2 VOC pseudo masks (trained LPG round 2 + round-1 VOC backbone)')

    backbone_scores, predictions = {}, {}
    for label, amp in PRECISIONS.items():
        save = os.path.join(out, f'test_{label}')
        run('test.py', '--type', 'test', '--root_path', voc, '--model_type', 'vgg16', '--model_path',
            work.backbone('voc', 'vgg16', 2), '--split', 'val', '--save_path', save, '--test_size', args.test_size,
            '--cuda', 'false', '--amp', amp, '--overwrite')
        with open(layout.scores_file(save, 'test')) as handle:
            backbone_scores[label] = json.load(handle)['without CRF']['Mean IoU']
        predictions[label] = os.path.join(save, 'pred')
    alike_pred = pixels_alike(*predictions.values())[0] if all(map(os.path.isdir, predictions.values())) else None
    result['backbone_test'] = dict(miou=backbone_scores, pixels_alike=alike_pred,
                                   step='round 2 VOC backbone on the validation images (test.py --type test)')

    with open(args.out, 'w') as handle:
        json.dump(result, handle, indent=1)
    print(f'pseudo masks: {100 * alike:.3f}% of {images} images\' pixels alike; mIoU fp32 '
          f'{100 * mask_scores["fp32"]:.2f}, bf16 {100 * mask_scores["bf16"]:.2f}')
    print(f'backbone test: mIoU fp32 {100 * backbone_scores["fp32"]:.2f}, bf16 {100 * backbone_scores["bf16"]:.2f}'
          + ('' if alike_pred is None else f'; {100 * alike_pred:.3f}% of predicted pixels alike'))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
