"""The fault suite, one rule for errors: bad input (the user's to fix) ends a script with one 'error: ...' line
and status 1, never a traceback; a bug keeps its traceback."""
import argparse
import errno
import os
import sys

import pytest

import genPseudoMasks
import run_rounds
from tests.conftest import cli
from tests.faults import CPU
from utils import imagenet_init, parseCOCO
from utils.engine.errors import InputError
from utils.engine.runtime import run_script


# ---------------------------------------------------------------------------------------------- one rule for errors
def test_run_script_gives_bad_input_one_line_and_bugs_their_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['script'])
    parser = argparse.ArgumentParser()

    def raising(error):
        def main(args):
            raise error
        return main
    with pytest.raises(SystemExit) as stop:
        run_script(raising(InputError(f'{tmp_path}/a.json: no "images" list')), parser)
    assert stop.value.code == f'error: {tmp_path}/a.json: no "images" list'
    with pytest.raises(SystemExit) as stop:
        run_script(raising(OSError(errno.EROFS, 'Read-only file system', str(tmp_path / 'x.png'))), parser)
    assert stop.value.code == f'error: {tmp_path / "x.png"}: Read-only file system'
    with pytest.raises(ValueError, match='a bug'):  # not the user's input: the traceback stays
        run_script(raising(ValueError('a bug')), parser)
    with pytest.raises(KeyError):
        run_script(raising(KeyError('model')), parser)


def test_an_output_folder_through_a_file_is_one_line(data, tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('not a folder')
    status, message = cli(genPseudoMasks, '--dataset', 'voc', '--method', 'box', '--voc_root_dir', data['voc'],
                          '--voc_proposals_dir', tmp_path / 'file' / 'out', *CPU, monkeypatch=monkeypatch)
    assert status == 1 and message.startswith(f'error: {tmp_path / "file"}') and message.endswith('Not a directory')


# ---------------------------------------------------------------------------------------------- messages
def test_random_bytes_are_not_a_checkpoint(tmp_path, monkeypatch):
    (tmp_path / 'random.pth').write_bytes(os.urandom(1000))
    status, message = cli(imagenet_init, '--arch', 'vgg16', '--src', tmp_path / 'random.pth', '--dst',
                          tmp_path / 'out.pth', monkeypatch=monkeypatch)
    assert status == 1
    assert message == f'error: {tmp_path / "random.pth"} is not a checkpoint (not a file written by torch.save)'


@pytest.mark.parametrize('script, flags, expected', [
    (parseCOCO, ['--dataRoot', '{tmp}'], 'COCO annotation file not found'),
    (imagenet_init, ['--arch', 'resnet101', '--src', '{tmp}/none.pth', '--dst', '{tmp}/x.pth'], 'checkpoint not found'),
    (run_rounds, ['--voc_root_dir', '{tmp}', '--coco_root_dir', '{tmp}', '--work_dir', '{tmp}/w', '--from_scratch'],
     'no PASCAL VOC 2012 found'),
])
def test_command_line_tools_report_bad_input_in_one_line(tmp_path, monkeypatch, script, flags, expected):
    status, message = cli(script, *[f.format(tmp=tmp_path) for f in flags], monkeypatch=monkeypatch)
    assert status == 1 and expected in message and 'Traceback' not in message and message.count('\n') == 0
