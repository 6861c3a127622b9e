"""Helpers of the fault suite, tests/test_faults_*.py: faults a user meets in multi-day jobs, each built in tmp_path;
every case asserts the message, the exit status and that nothing written earlier was lost. The suite's data
fixtures, `data` and `lpg_path`, are in conftest.py.

- `spawn` / `kill_when` / `run_to_end`: a project script in a subprocess on one thread (runs compared bit for bit),
  killed or signalled as soon as a condition holds, or run to the end.
- `backbone_flags` / `generation_flags`: the flags of a small float32 CPU run of main.py and genPseudoMasks.py.
- `pngs` / `same_weights`: outputs read back for comparison.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

from tests.conftest import ROOT
from utils.engine.checkpoint import load_checkpoint

CPU = ['--cuda', 'false', '--workers', 0, '--amp', 'off']  # float32: these tests compare outputs exactly


ONE_THREAD = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')  # runs compared bit for bit: one thread


def spawn(script, *flags):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script)] + [str(f) for f in flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ONE_THREAD)


def run_to_end(script, *flags):
    """Run a script as spawn does (one thread), to the end; returns its output."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(f) for f in flags], cwd=ROOT,
                          capture_output=True, text=True, env=ONE_THREAD)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def kill_when(process, condition, timeout=120, sig=signal.SIGKILL):
    """Send `sig` to `process` as soon as condition() holds; returns whether it was still running then."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            process.send_signal(sig)
            process.wait()
            return True
        time.sleep(0.01)
    process.wait()
    return False


def backbone_flags(data, save, *extra):
    return ['--root_path', data['voc'], '--label_path_name', 'SegmentationClassAug', '--save_path', save,
            '--from_scratch', '--batch_size', 2, '--crop_size', 33, *extra, *CPU]


def generation_flags(data, lpg_path, out, *extra):
    return ['--dataset', 'voc', '--round', 1, '--model_path_test', lpg_path, '--voc_root_dir', data['voc'],
            '--voc_proposals_dir', out, '--voc_test_size', 128, '--image_batch_size', 1, *extra, *CPU]


def pngs(folder):
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return {name: np.asarray(Image.open(os.path.join(folder, name))) for name in names if name.endswith('.png')}


def same_weights(path_a, path_b):
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
