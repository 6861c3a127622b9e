r"""Seconds per image of the sam baseline (genPseudoMasks.py --method sam), in float32 and in bf16 autocast.

    python benchmarks/sam_speed.py --model vit_b --repeats 3                  # CPU
    python benchmarks/sam_speed.py --model vit_h --device cuda --repeats 10   # a GPU

Times utils.pseudo_masks.sam_foregrounds, the script's own per-image work (SAM's image encoder once, then every box
prompt through the prompt encoder and mask decoder in one batch, the masks kept inside their boxes), on one
VOC-sized image (500 x 375) with three boxes already in memory: model only, no decoding or writing. The network
is randomly initialised (its compute does not depend on the weights). Each precision is warmed up once, then
timed --repeats times in the same process; the median is reported. Writes benchmarks/sam_speed_<device>.json.
"""
import argparse
import datetime
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np
import torch

from utils.engine.files import write_json
from utils.engine.precision import Precision, cpu_description
from utils.pseudo_masks import SAM_MODELS, SamImage, build_sam, sam_foregrounds, segment_anything

PRECISIONS = {'fp32': 'off', 'bf16': 'bf16'}


def time_precision(predictor, sample, precision, repeats, device):
    def once():
        start = time.perf_counter()
        sam_foregrounds(predictor, sample, precision)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - start
    once()  # warm-up
    return [once() for _ in range(repeats)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', choices=list(SAM_MODELS), default='vit_b')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', help='default: benchmarks/sam_speed_<device>.json')
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    predictor = segment_anything().SamPredictor(build_sam(SAM_MODELS[args.model]).to(device))
    image = (np.random.default_rng(0).random((375, 500, 3)) * 255).astype(np.uint8)
    boxes = [[(20, 30, 220, 300)], [(180, 60, 480, 350)], [(300, 10, 420, 120)]]
    sample = SamImage('bench', image, [15, 12, 5], boxes, 1)
    rows = {}
    for label, amp in PRECISIONS.items():
        seconds = time_precision(predictor, sample, Precision(amp, device), args.repeats, device)
        rows[label] = {'median_s_per_image': round(statistics.median(seconds), 3),
                       'runs_s': [round(s, 3) for s in seconds]}
        print(f'{args.model} {label}: {rows[label]["median_s_per_image"]} s per image (median of {args.repeats})',
              flush=True)
    ratio = rows['fp32']['median_s_per_image'] / rows['bf16']['median_s_per_image']
    print(f'bf16 autocast is {ratio:.2f}x the speed of fp32')
    machine = torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_description()
    result = {'what': 'utils.pseudo_masks.sam_foregrounds on one 500x375 image with 3 boxes, model only (image in '
                      'memory), random weights, median per image after one warm-up',
              'model': args.model, 'device': machine, 'threads': torch.get_num_threads(), 'rows': rows,
              'bf16_speedup': round(ratio, 2), 'torch': torch.__version__,
              'date': datetime.date.today().isoformat()}
    out = args.out or os.path.join(REPO, 'benchmarks', f'sam_speed_{device.type}.json')
    write_json(out, result)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
