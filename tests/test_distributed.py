"""torchrun with 2 CPU processes (gloo) on tiny data: the same outputs as one process, written once."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.synthetic import make_demo_data
from models.lpg import LPGNet
from tests.conftest import ROOT, run
from tests.tiny_sam_generation import TINY
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint, save_checkpoint
from utils.engine.errors import InputError
from utils.parseCOCO import parse_coco
from utils.pseudo_masks import build_sam
from utils.pseudo_masks.methods import mask_dir

CPU = ['--cuda', 'false', '--workers', 0, '--amp', 'off']  # float32: these tests compare outputs exactly


def torchrun(script, *flags, processes=2):
    """Run a project script (or ['-m', module]) under torchrun with `processes` CPU processes; returns its output."""
    target = script if isinstance(script, list) else [os.path.join(ROOT, script)]
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={processes}',
               *target] + [str(f) for f in flags]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, f'{script}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    coco_root, voc_root = make_demo_data(str(root / 'data'), num_coco=12, num_voc_train=6, num_voc_val=4,
                                         image_size=64, seed=2)
    parse_coco(coco_root)
    torch.manual_seed(0)
    lpg2 = str(root / 'LPG_Round2.pth')
    save_checkpoint(lpg2, **LPGNet(in_channels=5).state_dict())
    return dict(root=root, coco=coco_root, voc=voc_root, lpg2=lpg2)


@pytest.fixture(scope='module')
def voc_backbone(data):
    """A VGG16 VOC backbone trained for 2 iterations in one process."""
    save = data['root'] / 'voc1'
    run('main.py', '--root_path', data['voc'], '--label_path_name', 'SegmentationClassAug', '--save_path', save,
        '--from_scratch', '--num_iterations', 2, '--batch_size', 2, '--crop_size', 33, *CPU)
    return layout.backbone_weights(str(save), 'vgg16')


def read_masks(folder):
    return {name: np.asarray(Image.open(os.path.join(folder, name))) for name in sorted(os.listdir(folder))
            if name.endswith('.png')}


@pytest.mark.slow
def test_generation_sharded_over_two_processes_equals_one(data, voc_backbone):
    flags = ['--dataset', 'voc', '--round', 2, '--model_path_test', data['lpg2'], '--voc_root_dir', data['voc'],
             '--init_voc_model_path', voc_backbone, '--voc_test_size', 128, '--image_batch_size', 2, *CPU]
    run('genPseudoMasks.py', *flags, '--voc_proposals_dir', data['root'] / 'one')
    log = torchrun('genPseudoMasks.py', *flags, '--voc_proposals_dir', data['root'] / 'two')
    one = read_masks(mask_dir(str(data['root'] / 'one'), 'lpg', 'vgg16', 2))
    two = read_masks(mask_dir(str(data['root'] / 'two'), 'lpg', 'vgg16', 2))
    assert len(one) == 6 and one.keys() == two.keys()
    assert all(np.array_equal(one[name], two[name]) for name in one)
    assert log.count('6 images, 0 already done') == 1  # printed by rank 0 only
    # Skip-existing stays correct when sharded: remove two masks, rerun, only those two are made again.
    folder = mask_dir(str(data['root'] / 'two'), 'lpg', 'vgg16', 2)
    for name in list(two)[:2]:
        os.remove(os.path.join(folder, name))
    log = torchrun('genPseudoMasks.py', *flags, '--voc_proposals_dir', data['root'] / 'two')
    assert '6 images, 4 already done' in log and read_masks(folder).keys() == one.keys()


@pytest.mark.slow
def test_sam_generation_sharded_over_two_processes_equals_one(data):
    """--method sam under torchrun: each process prompts SAM with the boxes of its shard of the images; the masks
    are those of one process, and the summary is printed once."""
    torch.manual_seed(0)
    checkpoint = str(save_checkpoint(data['root'] / 'sam_tiny.pth', **build_sam(TINY).state_dict()))
    flags = ['--dataset', 'voc', '--method', 'sam', '--sam_model', 'tiny', '--sam_checkpoint', checkpoint,
             '--voc_root_dir', data['voc'], *CPU]
    module = ['-m', 'tests.tiny_sam_generation']
    one = subprocess.run([sys.executable, *module, *map(str, flags), '--voc_proposals_dir', data['root'] / 'sam1'],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    log = torchrun(module, *flags, '--voc_proposals_dir', data['root'] / 'sam2')
    one, two = (read_masks(os.path.join(data['root'], name, 'sam')) for name in ('sam1', 'sam2'))
    assert len(one) == 6 and one.keys() == two.keys()
    assert all(np.array_equal(one[name], two[name]) for name in one)
    assert log.count('6 images: 6 written') == 1


@pytest.mark.slow
def test_test_scores_over_two_processes_equal_one(data, voc_backbone, tmp_path):
    flags = ['--type', 'crf', '--root_path', data['voc'], '--model_path', voc_backbone, '--test_size', 65,
             '--n_jobs', 1, '--batch_size', 3, '--cuda', 'false', '--workers', 0, '--amp', 'off']
    run('test.py', *flags, '--save_path', tmp_path / 'one')
    torchrun('test.py', *flags, '--save_path', tmp_path / 'two')
    one = json.load(open(layout.scores_file(str(tmp_path / 'one'), 'crf')))
    two = json.load(open(layout.scores_file(str(tmp_path / 'two'), 'crf')))
    assert one == two and one['num_images'] == 4
    assert sorted(os.listdir(tmp_path / 'two' / 'crf')) == sorted(os.listdir(tmp_path / 'one' / 'crf'))


@pytest.mark.slow
def test_lpg_training_writes_one_checkpoint_series_and_resumes_on_another_process_count(data, tmp_path):
    flags = ['--coco_root_dir', data['coco'], '--round', 1, '--model_save_path', tmp_path, '--batch_size', 4,
             '--crop_size', 128, '--num_save_model', 2, '--num_print_log', 1, *CPU]
    log = torchrun('trainLPG.py', *flags, '--num_max_iterations', 2)
    folder = layout.lpg_dir(str(tmp_path), 1)
    assert sorted(os.listdir(folder)) == ['LPG_Round1.pth', 'LPG_Round1_iter2.pth', 'checkpoint_last.pth',
                                          'loss_curve.png', 'loss_log.csv', 'record.json']
    assert log.count('saved ') == 1 and log.count('iter 2/2 loss') == 1 and 'on 2 process(es)' in log
    state = load_checkpoint(layout.last_checkpoint(folder))
    assert state['iteration'] == 2 and not any(key.startswith('module.') for key in state['model'])
    # Resume with one process where two left off.
    log = run('trainLPG.py', *flags, '--num_max_iterations', 3, '--resume')
    assert 'resumed from' in log and 'iter 3/3' in log
    assert load_checkpoint(layout.last_checkpoint(folder))['iteration'] == 3


@pytest.mark.slow
def test_backbone_training_over_two_processes(data, tmp_path):
    log = torchrun('main.py', '--root_path', data['voc'], '--label_path_name', 'SegmentationClassAug',
                   '--save_path', tmp_path, '--from_scratch', '--num_iterations', 2, '--batch_size', 4,
                   '--iter_size', 2, '--crop_size', 33, '--num_print_log', 1, *CPU)
    assert sorted(os.listdir(tmp_path)) == ['checkpoint_last.pth', 'loss_curve.png', 'loss_log.csv', 'record.json',
                                            'vgg16_final.pth']
    assert log.count('saved ') == 1 and 'batch 4 x 2 on 2 process(es)' in log


def test_global_batch_is_split_evenly():
    from utils.engine.distributed import Context
    from utils.engine.training import per_process_batch
    four = Context(rank=1, world_size=4, local_rank=1, device=torch.device('cpu'))
    assert per_process_batch(32, four) == 8
    with pytest.raises(InputError, match='--batch_size 30 is the global batch and must be a multiple of the 4'):
        per_process_batch(30, four)


def test_sync_bn_converts_the_generator_and_needs_gpus():
    from utils.engine.distributed import Context
    from utils.engine.training import convert_sync_bn
    lpg = LPGNet(in_channels=4)
    cpu_pair = Context(rank=0, world_size=2, local_rank=0, device=torch.device('cpu'))
    with pytest.raises(InputError, match='--sync_bn.*--cuda'):
        convert_sync_bn(lpg, cpu_pair, enabled=True)
    assert convert_sync_bn(lpg, Context(0, 1, 0, torch.device('cpu')), enabled=True) is lpg  # one process: no-op
    gpu_pair = Context(rank=0, world_size=2, local_rank=0, device=torch.device('cuda', 0))
    converted = convert_sync_bn(lpg, gpu_pair, enabled=True)  # conversion itself needs no GPU
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in converted.modules())


@pytest.mark.slow
def test_run_rounds_runs_every_network_step_under_torchrun(data, tmp_path):
    """run_rounds.py --nproc_per_node 2: the network steps run in 2 gloo processes, the CPU-only steps in one;
    each training writes one checkpoint series, and the generation and the test scores equal a one-process
    run of the same step on the same weights."""
    work = tmp_path / 'work'
    log = run('run_rounds.py', '--voc_root_dir', data['voc'], '--coco_root_dir', data['coco'], '--work_dir', work,
              '--rounds', 1, '--from_scratch', '--nproc_per_node', 2, '--threads', 1, '--lpg_iterations', 2,
              '--lpg_batch_size', 4, '--lpg_crop_size', 128, '--backbone_iterations', 2, '--backbone_batch_size', 2,
              '--backbone_crop_size', 33, '--voc_test_size', 128, '--eval_test_size', 65, '--n_jobs', 1,
              '--cuda', 'false', '--workers', 0, '--amp', 'off', '--allow_empty')
    launched = [line for line in log.splitlines() if line.startswith('[run] ')]
    under_torchrun = {line[len('[run] '):].split(f': {sys.executable}')[0] for line in launched
                      if 'torch.distributed.run' in line}
    assert under_torchrun == {'round 1: train LPG', 'round 1: VOC pseudo masks', 'round 1: train VOC backbone',
                              'round 1: test VOC backbone + CRF'}
    assert len(launched) == 7  # + parse COCO, the box baseline and its score, the round-1 score: one process
    run_layout = layout.RunLayout(str(work))
    for step, final in (('round 1: train LPG', run_layout.lpg(1)),
                        ('round 1: train VOC backbone', run_layout.backbone('voc', 'vgg16', 1))):
        step_log = open(run_layout.step_log(step)).read()
        assert 'on 2 process(es)' in step_log and step_log.count('iter 2/2') == 1  # rank 0 alone logs and saves
        assert os.path.isfile(final)
        assert load_checkpoint(layout.last_checkpoint(os.path.dirname(final)))['iteration'] == 2

    generated = mask_dir(run_layout.pseudo_root('voc'), 'lpg', 'vgg16', 1)
    run('genPseudoMasks.py', '--dataset', 'voc', '--round', 1, '--model_path_test', run_layout.lpg(1),
        '--voc_root_dir', data['voc'], '--voc_proposals_dir', tmp_path / 'one', '--voc_test_size', 128, *CPU,
        '--allow_empty')
    one, two = read_masks(mask_dir(str(tmp_path / 'one'), 'lpg', 'vgg16', 1)), read_masks(generated)
    assert len(one) == 6 and one.keys() == two.keys() and all(np.array_equal(one[k], two[k]) for k in one)

    eval_dir = run_layout.backbone_eval('voc', 'vgg16', 1, 'val')
    run('test.py', '--type', 'crf', '--root_path', data['voc'], '--model_type', 'vgg16', '--model_path',
        run_layout.backbone('voc', 'vgg16', 1), '--split', 'val', '--save_path', tmp_path / 'eval', '--n_jobs', 1,
        '--test_size', 65, *CPU)
    assert (json.load(open(layout.scores_file(str(tmp_path / 'eval'), 'crf')))
            == json.load(open(layout.scores_file(eval_dir, 'crf'))))
