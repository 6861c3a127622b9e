"""The spread of the demo's results over seeds, for demo.py to say whether a run falls inside it.

    python benchmarks/demo_spread.py --seeds 0,1,2          # 3 runs of 10 to 14 minutes on 2 CPU cores

Runs `python demo.py --seed S` for each seed (each in demo_output/spread_seed<S>; the seed changes the generated
data, the data order, the augmentations and the initial weights), and writes benchmarks/demo_spread.json: per
row of the demo's tables the values, their mean and standard deviation, and the range of the run times. The file
keeps one spread per precision (`--amp auto` is bf16 on a CPU with bf16 units and float32 on others, and the two
round differently); a run replaces the spread of its own precision and keeps the others.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from demo import read_spreads, result_rows
from utils.engine.files import write_json
from utils.engine.precision import cpu_description


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', default='0,1,2')
    parser.add_argument('--out', default=os.path.join(HERE, 'benchmarks', 'demo_spread.json'))
    args = parser.parse_args()
    runs = {}
    for seed in (int(s) for s in args.seeds.split(',')):
        out_dir = os.path.join(HERE, 'demo_output', f'spread_seed{seed}')
        tic = time.time()
        subprocess.run([sys.executable, os.path.join(HERE, 'demo.py'), '--seed', str(seed), '--out_dir', out_dir,
                        '--figs_dir', os.path.join(out_dir, 'figs')], check=True, cwd=HERE)
        with open(os.path.join(out_dir, 'demo_results.json')) as handle:
            runs[seed] = dict(json.load(handle), wall_seconds=round(time.time() - tic, 1))
    rows = {}
    for seed, result in runs.items():
        for name, value in result_rows(result).items():
            rows.setdefault(name, []).append(value)
    precisions = {run.get('precision', 'fp32') for run in runs.values()}
    if len(precisions) != 1:
        raise SystemExit(f'the runs computed in different precisions ({", ".join(sorted(precisions))})')
    precision = precisions.pop()
    # The CPU's name and bf16 units go with the spread: it depends on how the CPU rounds.
    machine = f'{platform.machine()}, Python {platform.python_version()}, {cpu_description()}'
    spread = {'seeds': list(runs), 'machine': machine, 'precision': precision,
              'rows': {name: {'values': values, 'mean': float(np.mean(values)), 'std': float(np.std(values))}
                       for name, values in rows.items()},
              'seconds': {'values': [run['wall_seconds'] for run in runs.values()],
                          'min': min(run['wall_seconds'] for run in runs.values()),
                          'max': max(run['wall_seconds'] for run in runs.values())}}
    spreads = read_spreads(args.out)
    spreads[precision] = spread
    write_json(args.out, {'spreads': spreads})
    for name, stats in spread['rows'].items():
        print(f'{name}: {100 * stats["mean"]:.1f} +- {100 * stats["std"]:.1f} mIoU '
              f'({", ".join(f"{100 * v:.1f}" for v in stats["values"])})')
    print(f'{precision}; time per run: {spread["seconds"]["min"]:.0f} to {spread["seconds"]["max"]:.0f} s; '
          f'wrote {args.out}')


if __name__ == '__main__':
    main()
