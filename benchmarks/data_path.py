r"""The data path alone: what one CPU core decodes, augments and writes per second for each job.

    python benchmarks/data_path.py --out benchmarks/cpu_data_path.json

Each stage runs in this process on one thread (torch and OpenCV), on generated images at the release's sizes
(VOC 500 x 375, COCO 640 x 480, test 513 x 513), the way a loader worker or a writer thread runs it. A job's
data path keeps up with its compute while (loader workers) x (items/s of one core) exceeds the items/s the
network consumes; `benchmarks/benchmark.py` gives the second figure for the whole job (data loading included).
The JPEG decoders are timed on the same files: OpenCV (what `datasets.io.read_image_bgr` uses), Pillow and
`torchvision.io.decode_jpeg`.
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_data
import bench_measure
import benchmark

from datasets.boxes import BoxImageDataset
from datasets.io import read_image_bgr, save_palette_png
from datasets.segmentation import SegmentationDataset, TestImageDataset
from datasets.transforms import ScalePadCropFlip, nearest_centres
from datasets.voc import read_split, split_file, voc_items
from utils.engine.distributed import init_distributed
from utils.evaluation.logits import save_logits


def per_second(run, count, repeats):
    """Items per second of run(i) over count items, the best of repeats passes (the first pass warms the
    page cache and the allocator)."""
    best = float('inf')
    for _ in range(repeats):
        tic = time.perf_counter()
        for index in range(count):
            run(index)
        best = min(best, time.perf_counter() - tic)
    return count / best


def decode_pil(path):
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))[:, :, ::-1].astype(np.float32)


def decode_torchvision(path):
    import torchvision.io
    return torchvision.io.decode_jpeg(torchvision.io.read_file(path)).permute(1, 2, 0).flip(-1).float()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=16, help='images per stage')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default=os.path.join(REPO, 'benchmarks', 'cpu_data_path.json'))
    options = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    data_dir = tempfile.mkdtemp(prefix='lpg_data_path_')
    args = benchmark.get_args_parser().parse_args(['--device', 'cpu', '--data_dir', data_dir, '--warmup', '0',
                                                   '--images', str(options.images)])
    ctx = init_distributed(False)
    count, repeats = options.images, options.repeats
    rows = {}
    try:
        gen_items = bench_data.generation_items(args, ctx, count)
        paths = [path for _, path, _ in gen_items]
        for name, decode in (('cv2.imdecode (read_image_bgr)', read_image_bgr), ('PIL', decode_pil),
                             ('torchvision.io.decode_jpeg', decode_torchvision)):
            rows[f'decode 500x375 JPEG, {name}'] = per_second(lambda i: decode(paths[i]), count, repeats)
        boxes = BoxImageDataset(gen_items, 512)
        rows['generation item: decode, pad to 512, box masks (BoxImageDataset)'] = per_second(
            lambda i: boxes[i], count, repeats)
        masks = [np.random.default_rng(i).integers(0, 21, (375, 500), dtype=np.uint8) for i in range(count)]
        out = os.path.join(data_dir, 'written')
        os.makedirs(out)
        rows['generation write: 500x375 palette PNG (save_palette_png)'] = per_second(
            lambda i: save_palette_png(os.path.join(out, f'{i}.png'), masks[i] * (masks[i] < 3)), count, repeats)

        args.lpg_batch = max(1, count // 2)  # coco_tree makes 2 x lpg_batch images
        lpg = bench_data.lpg_dataset(args, ctx)
        rows['LPG training sample: COCO60LPGDataset, crop 512'] = per_second(lambda i: lpg[i % len(lpg)], count,
                                                                             repeats)
        args.vgg_batch = max(1, count // 2)
        root = bench_data.voc_tree(args, ctx, 2 * args.vgg_batch, bench_data.VOC_SHAPES[0])
        seg = SegmentationDataset(voc_items(root, read_split(split_file(root, 'train')), 'SegmentationClassAug'),
                                  augment=ScalePadCropFlip(321, nearest_centres, seed=0, round_size=round))
        rows['VGG16 training sample: SegmentationDataset + ScalePadCropFlip, crop 321'] = per_second(
            lambda i: seg[i % len(seg)], count, repeats)
        test_root = bench_data.voc_tree(args, ctx, count, (513, 513))
        test_items = [(i, os.path.join(test_root, 'JPEGImages', f'{i}.jpg'))
                      for i in read_split(split_file(test_root, 'train'))]
        test = TestImageDataset(test_items)
        rows['test item: 513x513 (TestImageDataset)'] = per_second(lambda i: test[i % len(test)], count, repeats)
        logits = np.random.default_rng(0).standard_normal((21, 65, 65)).astype(np.float32)
        rows['test write: 21x65x65 float32 logits .npz (save_logits)'] = per_second(
            lambda i: save_logits(os.path.join(out, f'{i}.npz'), logits, (513, 513), (513, 513)), count, repeats)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    for name, rate in rows.items():
        print(f'{rate:9.1f} items/s on one core  ({1000 / rate:7.2f} ms)  {name}')
    report = dict(device=bench_measure.device_name(torch.device('cpu')),
                  date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                  command='python ' + shlex.join(sys.argv), torch=torch.__version__, opencv=cv2.__version__,
                  threads=1, images=count, repeats=repeats, load_average_at_end=os.getloadavg(),
                  items_per_second_one_core={name: round(rate, 1) for name, rate in rows.items()})
    with open(options.out, 'w') as handle:
        json.dump(report, handle, indent=2)
    print(f'wrote {options.out}')


if __name__ == '__main__':
    main()
