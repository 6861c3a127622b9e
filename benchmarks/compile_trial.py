r"""Does `torch.compile` pay? Eager against compiled (inductor), for the generator and the two backbones, in
inference and in training, timed in one process.

    python benchmarks/compile_trial.py --out benchmarks/cpu_compile.json           # this CPU
    python benchmarks/compile_trial.py --device cuda --out benchmarks/<gpu>_compile.json

Model only (random tensors, randomly initialised networks; no data loading), in the precision `--amp` chooses
(default auto, as the scripts) and its memory format. For each case: the compile time (the first compiled call
minus one eager call), then the median of `--repeats` timed calls of each variant after one warm-up call, and
the largest absolute difference of the outputs (inference) or of the losses (training, first step from the same
weights) between the two.
"""
import argparse
import copy
import datetime
import json
import os
import shlex
import statistics
import sys
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_measure import device_name

from models.backbones import build_backbone
from models.lpg import LPGNet
from utils.engine.precision import AMP_CHOICES, Precision


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def seconds_of(device, run):
    sync(device)
    tic = time.perf_counter()
    result = run()
    sync(device)
    return time.perf_counter() - tic, result


def first_output(output):
    return output[0] if isinstance(output, (list, tuple)) else output


def inference_case(net, shape, precision):
    model = precision.prepare_model(net).eval()
    inputs = precision.prepare_input(torch.randn(shape))

    def make(module):
        @torch.no_grad()
        def run():
            with precision.autocast():
                return first_output(module(inputs)).float()
        return run
    return model, make


def training_case(net, shape, classes, precision, optimizer_of):
    inputs = precision.prepare_input(torch.randn(shape))
    targets = torch.randint(0, classes, (shape[0], shape[2], shape[3]), device=precision.device)

    def make(module):
        module = module.train()
        optimizer = optimizer_of(module)

        def run():
            with precision.autocast():
                logits = first_output(module(inputs))
            loss = F.cross_entropy(F.interpolate(logits.float(), size=targets.shape[-2:], mode='bilinear'), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.detach()
        return run
    return precision.prepare_model(net), make


def cases(args, device):
    inference, training = Precision(args.amp, device), Precision(args.amp, device, training=True)
    sgd = lambda model: torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    adam = lambda model: torch.optim.Adam(model.parameters(), lr=1e-5)
    s = args.train_scale
    table = {
        'VGG16 inference 1x3x512x512': lambda: inference_case(build_backbone('vgg16', 21), (1, 3, 512, 512),
                                                              inference),
        'LPG inference 4x5x512x512': lambda: inference_case(LPGNet(5), (4, 5, 512, 512), inference),
        'ResNet-101 (multi-scale) inference 1x3x513x513': lambda: inference_case(
            build_backbone('resnet101', 21), (1, 3, 513, 513), inference),
        f'LPG training step {4 * s}x5x256x256 (Adam)': lambda: training_case(LPGNet(5), (4 * s, 5, 256, 256), 2,
                                                                              training, adam),
        f'VGG16 training step {2 * s}x3x321x321 (SGD)': lambda: training_case(
            build_backbone('vgg16', 21), (2 * s, 3, 321, 321), 21, training, sgd),
    }
    wanted = [name for name in table if any(key.lower() in name.lower() for key in args.cases.split(','))]
    return {name: table[name] for name in wanted}, inference, training


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', choices=AMP_CHOICES, default='auto')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--train_scale', type=int, default=1, help='multiplies the training batches (4 and 2)')
    parser.add_argument('--cases', default='vgg16 inference,lpg inference,resnet,lpg training,vgg16 training',
                        help='comma list of case-name fragments')
    parser.add_argument('--mode', default='default', help="torch.compile mode ('default', 'max-autotune', ...)")
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    table, inference, training = cases(args, device)
    print(f'inference {inference.describe()}; training {training.describe()}; {torch.get_num_threads()} threads')
    rows = []
    for name, build in table.items():
        torch.manual_seed(0)
        model, make = build()
        eager_model, compiled_model = model, torch.compile(copy.deepcopy(model), mode=args.mode)
        eager, compiled = make(eager_model), make(compiled_model)
        eager_first, eager_out = seconds_of(device, eager)
        compile_first, compiled_out = seconds_of(device, compiled)
        if 'training' in name:  # compare first steps from the same weights: rebuild both and take one step each
            torch.manual_seed(0)
            model, make = build()
            fresh_eager, fresh_compiled = make(model), make(torch.compile(copy.deepcopy(model), mode=args.mode))
            eager_out, compiled_out = fresh_eager(), fresh_compiled()
        difference = (eager_out - compiled_out).abs().max().item()
        times = {}
        for variant, run in (('eager', eager), ('compiled', compiled)):
            run()
            times[variant] = statistics.median(seconds_of(device, run)[0] for _ in range(args.repeats))
        row = dict(case=name, eager_s=round(times['eager'], 4), compiled_s=round(times['compiled'], 4),
                   speedup=round(times['eager'] / times['compiled'], 3),
                   compile_s=round(compile_first - eager_first, 1), max_abs_difference=difference)
        rows.append(row)
        print(f'{name:<48} eager {row["eager_s"]:8.3f} s  compiled {row["compiled_s"]:8.3f} s  '
              f'{row["speedup"]:5.2f}x  compile {row["compile_s"]:6.1f} s  max |diff| {difference:.2e}', flush=True)
        del model, eager_model, compiled_model, eager, compiled
        torch._dynamo.reset()
    report = dict(device=device_name(device), date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                  command='python ' + shlex.join(sys.argv), torch=torch.__version__, threads=torch.get_num_threads(),
                  inference_precision=inference.describe(), training_precision=training.describe(),
                  mode=args.mode, repeats=args.repeats, includes='model only (random tensors, no data loading)',
                  load_average_at_end=os.getloadavg(), rows=rows)
    with open(args.out, 'w') as handle:
        json.dump(report, handle, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
