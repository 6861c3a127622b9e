r"""Which precision and memory format each network runs fastest in on this device, measured in one process.

    python benchmarks/precision_layout.py                      # fp32, fp32 channels-last, bf16 channels-last
    python benchmarks/precision_layout.py --compile            # and torch.compile of the fastest eager variant
    python benchmarks/precision_layout.py --variants fp32,fp32-cl --out benchmarks/cpu_layout.json

For each network (DeepLab-LargeFOV VGG16, the LPG generator, multi-scale DeepLab-V2 ResNet-101) and mode
(inference: a no-grad forward; training: forward, float32 loss, backward and optimiser step), each variant is
timed on the same random input and randomly initialised weights (timings do not depend on them), model only:
no data loading. Every inference variant's logits are compared with the first variant's: the largest
difference relative to the largest logit, and the fraction of pixels whose argmax agrees (training rows are
timed only: dropout and the optimiser steps make their outputs differ anyway). This is what
`utils.engine.precision.Precision` bases its choice of channels-last on. The JSON holds every row and the machine.
"""
import argparse
import copy
import datetime
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from models import DeepLabLargeFOV, DeepLabV2ResNet101, LPGNet
from utils.engine.precision import cpu_bf16_units

# (name, network, input shape (N, C, H, W) for inference, for training): the release's sizes, with the batches
# cut to what a 2-core CPU times in seconds (the per-image cost is what matters for the ratios).
NETWORKS = {
    'vgg16': (lambda: DeepLabLargeFOV(num_classes=21), (1, 3, 512, 512), (2, 3, 321, 321)),
    'lpg': (lambda: LPGNet(in_channels=5), (4, 5, 512, 512), (2, 5, 512, 512)),
    'resnet101': (lambda: DeepLabV2ResNet101(num_classes=21), (1, 3, 513, 513), None),
}
VARIANTS = {'fp32': (None, False), 'fp32-cl': (None, True), 'bf16-cl': (torch.bfloat16, True)}


def first_output(output):
    return output[-1] if isinstance(output, (list, tuple)) else output


def time_variant(model, inputs, mode, dtype, channels_last, repeats, compile_model=False):
    """(seconds per call, output of the last call, compile seconds or None)."""
    model = copy.deepcopy(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    model.train(mode == 'training')
    runner = torch.compile(model) if compile_model else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-9) if mode == 'training' else None

    def call():
        if optimizer is None:
            with torch.no_grad(), torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
                return first_output(runner(inputs))
        with torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
            logits = first_output(runner(inputs))
        loss = F.cross_entropy(logits.float(), torch.zeros(logits.shape[0], *logits.shape[2:], dtype=torch.long))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return logits.detach()

    start = time.perf_counter()
    output = call()  # warm-up (and compilation)
    compile_seconds = time.perf_counter() - start if compile_model else None
    start = time.perf_counter()
    for _ in range(repeats):
        output = call()
    return (time.perf_counter() - start) / repeats, output.float(), compile_seconds


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--networks', default=','.join(NETWORKS))
    parser.add_argument('--modes', default='inference,training')
    parser.add_argument('--variants', default=','.join(VARIANTS))
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--compile', action='store_true', help='also time torch.compile of each variant')
    parser.add_argument('--out', default=os.path.join(REPO, 'benchmarks', 'cpu_layout.json'))
    return parser


def main(args):
    torch.manual_seed(0)
    rows = []
    print(f'CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} '
          f'threads, capability {torch.backends.cpu.get_cpu_capability()}, bf16 units: {cpu_bf16_units() or "none"}')
    for name in args.networks.split(','):
        build, inference_shape, training_shape = NETWORKS[name]
        network = build()
        for mode in args.modes.split(','):
            shape = inference_shape if mode == 'inference' else training_shape
            if shape is None:
                continue
            inputs = torch.randn(shape)
            baseline = None
            for variant in args.variants.split(','):
                for compiled in (False, True) if args.compile else (False,):
                    dtype, channels_last = VARIANTS[variant]
                    seconds, output, compile_seconds = time_variant(network, inputs, mode, dtype, channels_last,
                                                                    args.repeats, compiled)
                    if baseline is None:
                        baseline = (seconds, output)
                    row = dict(network=name, mode=mode, input=list(shape), variant=variant, compiled=compiled,
                               seconds=seconds, speedup_vs_first=baseline[0] / seconds,
                               compile_seconds=compile_seconds)
                    if mode == 'inference':
                        row.update(max_rel_diff=((output - baseline[1]).abs().max() / baseline[1].abs().max()).item(),
                                   argmax_agreement=(output.argmax(1) == baseline[1].argmax(1)).float().mean().item())
                    rows.append(row)
                    alike = (f'  max rel diff {row["max_rel_diff"]:.1e}  argmax alike {row["argmax_agreement"]:.6f}'
                             if mode == 'inference' else '')
                    print(f'{name:9s} {mode:9s} {variant:8s}{" compiled" if compiled else "         "} '
                          f'{seconds:7.3f} s  {row["speedup_vs_first"]:5.2f}x{alike}'
                          + (f'  compile {compile_seconds:.1f} s' if compiled else ''), flush=True)
    result = dict(date=datetime.datetime.now().isoformat(timespec='seconds'), command=' '.join(sys.argv),
                  torch=torch.__version__, cpu=platform.processor() or platform.machine(),
                  cpu_capability=torch.backends.cpu.get_cpu_capability(), bf16_units=cpu_bf16_units(),
                  threads=torch.get_num_threads(), load_average=os.getloadavg(), precision_note=(
                      'fp32 = float32, contiguous; -cl = channels-last; bf16 = autocast bf16; model only, no data '
                      'loading; speedup_vs_first against the first variant listed'), rows=rows)
    with open(args.out, 'w') as handle:
        json.dump(result, handle, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main(get_args_parser().parse_args())
