"""The fault suite, locks and the file system: one run per output folder (and a killed run's lock is stale),
symlinks are replaced rather than written through, a full disk keeps the earlier file, and leftover temporary
files are removed at the next start."""
import errno
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import main as train_backbone
import run_rounds
from tests.conftest import ROOT, cli
from tests.faults import backbone_flags, spawn
from utils.engine import files as file_io  # the file-system side: atomic writes, folder locks
from utils.engine.checkpoint import save_checkpoint
from utils.engine.layout import RunLayout


# ---------------------------------------------------------------------------------------------- shared folders
@pytest.mark.slow
def test_a_second_run_in_a_live_runs_folder_is_refused_and_a_killed_runs_lock_is_stale(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    flags = backbone_flags(data, save, '--num_iterations', 400, '--num_save_model', 1000, '--num_print_log', 1)
    first = spawn('main.py', *flags)
    assert first.stdout.readline() and wait_for_line(first, 'iter 1/')
    status, message = cli(train_backbone, *flags, '--overwrite', monkeypatch=monkeypatch)
    assert status == 1 and message == (f'{save} is in use by another run (process {first.pid}): two runs writing one '
                                       "folder would destroy each other's files; wait for it to end, or choose "
                                       'another output folder')
    assert first.poll() is None, 'the second run stopped the first'
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert os.path.exists(save / file_io.LOCK_NAME)  # left by the killed run: its lock died with it
    assert cli(train_backbone, *backbone_flags(data, save, '--num_iterations', 1), '--overwrite',
               monkeypatch=monkeypatch)[0] == 0
    assert not os.path.exists(save / file_io.LOCK_NAME)  # given back on the way out


def test_a_killed_runs_surviving_worker_does_not_keep_its_folder_locked(tmp_path):
    """A run's loader workers are forked children: killed with kill -9, the run leaves them alive for a while.
    They must not hold its folder's lock (a flock would be inherited; the POSIX record lock is not)."""
    folder = tmp_path / 'run'
    script = (f'import os, sys, time; sys.path.insert(0, {ROOT!r}); from utils.engine.files import claim_folder; '
              f'claim_folder({str(folder)!r})\n'
              'if os.fork() == 0:\n    os.closerange(0, 3); time.sleep(30); os._exit(0)\n'
              'print("claimed", flush=True); os._exit(0)')  # the parent dies without giving the folder back
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == 'claimed', proc.stderr
    try:
        file_io.claim_folder(str(folder))  # refused while the child lives, if the lock were inherited
    finally:
        subprocess.run(['pkill', '-f', re.escape(f'claim_folder({str(folder)!r})')])  # the sleeping child
    file_io.release_folders()
    assert not os.path.exists(folder / file_io.LOCK_NAME)


def wait_for_line(process, prefix, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            return False
        if line.startswith(prefix):
            return True
    return False


def test_logs_and_locks_replace_a_symlink_instead_of_writing_through_it(data, tmp_path):
    outside = tmp_path / 'precious.txt'
    outside.write_text('keep me')
    work = tmp_path / 'work'
    args = run_rounds.get_args_parser().parse_args(['--voc_root_dir', data['voc'], '--coco_root_dir', data['coco'],
                                                    '--work_dir', str(work), '--overwrite'])
    log = RunLayout(str(work)).step_log('parse COCO')
    os.makedirs(os.path.dirname(log))
    os.symlink(outside, log)
    os.symlink(outside, os.path.join(data['coco'], 'annotations', file_io.LOCK_NAME))
    run_rounds.Runner(args).step('parse COCO', os.path.join('utils', 'parseCOCO.py'), dict(dataRoot=data['coco']))
    assert outside.read_text() == 'keep me'
    assert not os.path.islink(log) and 'labelling' in open(log).read()


# ---------------------------------------------------------------------------------------------- writing files
def test_a_full_disk_says_so_and_keeps_the_earlier_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'checkpoint_last.pth'
    save_checkpoint(path, step=1, weights=torch.zeros(10))
    before = path.read_bytes()

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 100:
                raise OSError(errno.ENOSPC, 'No space left on device')
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    real_open = open
    monkeypatch.setattr(file_io, 'open', lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    with pytest.raises(OSError, match='no space left on device while writing .*checkpoint_last.pth \\(the earlier '
                                      'file is intact\\)'):
        save_checkpoint(path, step=2, weights=torch.zeros(100000))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['checkpoint_last.pth']


def test_leftover_temporary_files_are_removed_at_the_next_start(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    flags = backbone_flags(data, save, '--num_iterations', 1)
    assert cli(train_backbone, *flags, monkeypatch=monkeypatch)[0] == 0
    leftover = save / f'.checkpoint_last.pth.{"0" * 32}.tmp'
    leftover.write_bytes(b'half a checkpoint')
    assert cli(train_backbone, *flags[:-4], '--num_iterations', 2, '--resume', *flags[-4:],
               monkeypatch=monkeypatch)[0] == 0
    assert not leftover.exists()
