"""--amp auto: bf16 where the device multiplies bf16 natively, float32 elsewhere, and the reason logged."""
import torch

import main as train_backbone
from utils.engine import precision as precision_module
from utils.engine.precision import Precision, choose_amp

CPU = torch.device('cpu')


def test_auto_is_bf16_on_a_cpu_with_bf16_units(monkeypatch):
    monkeypatch.setattr(precision_module, 'cpu_bf16_units', lambda: ['AMX'])
    chosen = Precision('auto', CPU)
    assert chosen.label == 'bf16' and chosen.dtype == torch.bfloat16 and chosen.channels_last
    assert chosen.describe() == 'precision: bf16, channels-last (--amp auto: this CPU has bf16 matrix units (AMX))'
    assert Precision(None, CPU).label == 'bf16'  # a caller without the flag gets the same choice
    assert Precision('off', CPU).label == 'fp32'  # asked for, float32 stays float32


def test_auto_is_float32_on_a_cpu_without_them(monkeypatch):
    monkeypatch.setattr(precision_module, 'cpu_bf16_units', lambda: [])
    inference, training = Precision('auto', CPU), Precision('auto', CPU, training=True)
    assert inference.label == training.label == 'fp32' and inference.dtype is None
    assert 'no bf16 matrix units' in inference.reason and 'CPU capability' in inference.reason
    # channels-last where it measured faster: float32 inference on the CPU, not float32 training
    assert inference.channels_last and not training.channels_last
    assert Precision('bf16', CPU, training=True).channels_last


def test_auto_is_bf16_on_cuda_and_the_reason_names_explicit_choices():
    assert choose_amp('auto', torch.device('cuda')) == ('bf16', '--amp auto on CUDA')
    assert choose_amp('off', torch.device('cuda')) == ('off', '--amp off')
    assert choose_amp('bf16', CPU) == ('bf16', '--amp bf16')


def test_cpu_bf16_units_asks_torch(monkeypatch):
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, '_is_avx512_bf16_supported', lambda: False, raising=False)
    assert precision_module.cpu_bf16_units() == (['AMX'] if torch.backends.mkldnn.is_available() else [])
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: False, raising=False)
    assert precision_module.cpu_bf16_units() == []


def test_bf16_training_step_keeps_float32_weights_and_loss():
    """The backbone's loss (main.segmentation_loss) is taken in float32 from bf16 logits, and the weights stay
    float32 through the scaled step."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 2, 1))
    bf16 = Precision('bf16', CPU, training=True)
    model = bf16.prepare_model(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with bf16.autocast():
        logits = model(bf16.prepare_input(torch.randn(2, 3, 8, 8)))
    assert logits.dtype == torch.bfloat16
    loss = train_backbone.segmentation_loss(logits, torch.zeros(2, 8, 8, dtype=torch.long))
    before = model[0].weight.detach().clone()
    bf16.scaler.scale(loss).backward()
    bf16.scaler.step(optimizer)
    assert loss.dtype == torch.float32 and model[0].weight.dtype == torch.float32
    assert not torch.equal(model[0].weight, before)
