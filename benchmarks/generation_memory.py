r"""Peak memory of pseudo-mask generation against the image size, and what --max_side saves.

    python benchmarks/generation_memory.py --sides 512,1024,2048 --max_side 1024      # CPU, --amp auto
    python benchmarks/generation_memory.py --method grabcut --sides 512,1024,2048 --max_side 1024

For each size, one process makes the masks of one square generated image with two boxes, reading and writing
included, and reports the process's peak resident memory (ru_maxrss) and the time: --method lpg (a randomly
initialised round-1 generator: memory does not depend on the weights) through utils.pseudo_masks.generate_lpg,
genPseudoMasks.py's loop; box, grabcut or crf through the baselines' job of one image. Writes
benchmarks/generation_memory_<device>.json (lpg) or generation_memory_<device>_<method>.json.
"""
import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def one_run(side, max_side, device_name, method):
    """In this process: generate one side x side image's masks; print the peak memory (MiB) and seconds."""
    import cv2
    import numpy as np
    import torch

    from models import LPGNet
    from utils.engine.precision import Precision
    from utils.pseudo_masks import generate_lpg
    from utils.pseudo_masks.baselines import baseline_image
    from utils.pseudo_masks.methods import LPG, get_method
    device = torch.device(device_name)
    precision = Precision('auto', device)
    folder = tempfile.mkdtemp()
    image = (np.random.default_rng(0).random((side, side, 3)) * 255).astype(np.uint8)
    path = os.path.join(folder, 'image.jpg')
    cv2.imwrite(path, image)
    boxes = [(1, side // 8, side // 8, side // 2, side // 2), (2, side // 3, side // 3, side - 1, side - 1)]
    start = time.time()
    if method == LPG.name:
        lpg = precision.prepare_model(LPGNet(in_channels=4).to(device).eval())
        start = time.time()
        with torch.no_grad():
            failed, _ = generate_lpg(lpg, None, [('image', path, boxes)], folder, device, precision,
                                     test_size=512, workers=0, progress=False, max_side=max_side)
    else:
        _, failure = baseline_image(get_method(method).foreground, ('image', path, boxes), folder, 'smaller', False,
                                    max_side)
        failed = [failure] if failure else []
    if device.type == 'cuda':
        torch.cuda.synchronize()
    seconds = time.time() - start
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({'method': method, 'side': side, 'max_side': max_side, 'peak_mib': round(peak),
                      'seconds': round(seconds, 2),
                      'precision': precision.label if method == LPG.name else 'uint8/fp32',
                      'failed': failed}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sides', default='512,1024,2048')
    parser.add_argument('--max_side', type=int, default=1024, help='also run the sides above it with --max_side')
    parser.add_argument('--device', default='cpu')
    from utils.pseudo_masks.methods import LPG, METHODS
    parser.add_argument('--method', choices=[LPG.name] + [spec.name for spec in METHODS.values() if spec.foreground],
                        default=LPG.name)
    parser.add_argument('--one', nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one_run(args.one[0], args.one[1] or None, args.device, args.method)
    from utils.engine.files import write_json
    from utils.engine.precision import cpu_description
    rows = []
    for side in (int(s) for s in args.sides.split(',')):
        for max_side in [0] + ([args.max_side] if side > args.max_side else []):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), '--device', args.device, '--method',
                                  args.method, '--one', str(side), str(max_side)], capture_output=True, text=True,
                                 check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    record = {'date': datetime.date.today().isoformat(), 'command': ' '.join(sys.argv),
              'machine': cpu_description() if args.device == 'cpu' else args.device,
              'measures': 'peak resident memory of the process (CPU) or peak allocated CUDA memory, one image, '
                          'reading and writing included', 'rows': rows}
    suffix = '' if args.method == LPG.name else f'_{args.method}'
    out = os.path.join(REPO, 'benchmarks', f'generation_memory_{args.device}{suffix}.json')
    write_json(out, record)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
