"""Numerical precision of a run: `--amp auto|bf16|fp16|off`, TF32, channels-last.

`auto` (the default) picks bf16 autocast on CUDA and on a CPU with bf16 matrix units (Intel AMX or
AVX512-BF16, as torch reports them), and float32 on any other CPU, where bf16 is emulated and slower.
`off` is true float32: TF32 is switched off for convolutions and matrix products, so a CUDA run computes
what the float32 algorithm computes (up to the order of floating-point sums). With bf16 or fp16 the forward
passes run under autocast; the losses and the optimiser steps stay in float32, and fp16 training scales the
loss (GradScaler) to keep small gradients.

Channels-last memory format, where it measured faster (`benchmarks/precision_layout.py`): under autocast, on
CUDA and on the CPU; and in float32 inference on the CPU (1.2-1.4x for the three networks on a 2-core AVX2
CPU, logits within 2e-6 of contiguous float32, the order of the sums). Float32 training on the CPU stays
contiguous: its backward ran 0.6-0.7x as fast in channels-last there. A frozen network inside a training (the
backbone that trainLPG.py reads) runs in the inference format (`Precision.frozen`).
"""
import contextlib
import functools
import os
import platform

import torch

from .errors import InputError

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'off': None}
AMP_CHOICES = ('auto', *AMP_DTYPES)


def add_amp_arg(parser):
    parser.add_argument('--amp', choices=AMP_CHOICES, default='auto',
                        help='mixed precision: bf16 or fp16 autocast, or off (true float32, TF32 disabled); '
                        'auto (default): bf16 on CUDA and on a CPU with bf16 matrix units (AMX, AVX512-BF16), '
                        'float32 on other CPUs')


def cpu_bf16_units():
    """The bf16 matrix instructions this CPU has that oneDNN uses (torch's own checks), e.g. ['AMX'];
    empty when bf16 would be emulated."""
    if not torch.backends.mkldnn.is_available():
        return []
    checks = {'AMX': '_is_amx_tile_supported', 'AVX512-BF16': '_is_avx512_bf16_supported'}
    return [name for name, check in checks.items() if getattr(torch.cpu, check, lambda: False)()]


def cpu_description():
    """This CPU for a benchmark record: its model name, cores, the vector instructions torch uses and its bf16
    units (which decide what --amp auto picks), e.g. 'AMD EPYC (2 cores, AVX2, bf16 units: none)'."""
    name = platform.processor() or platform.machine()
    if os.path.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as info:
            models = [line.split(':', 1)[1].strip() for line in info if line.startswith('model name')]
        name = models[0] if models else name
    units = ', '.join(cpu_bf16_units()) or 'none'
    return f'{name} ({os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}, bf16 units: {units})'


def choose_amp(amp, device):
    """(amp, why) for --amp on this device: `auto` resolved, with the reason the script logs."""
    if amp not in (None, 'auto'):
        return amp, '--amp ' + amp
    if device.type == 'cuda':
        return 'bf16', '--amp auto on CUDA'
    units = cpu_bf16_units()
    if units:
        return 'bf16', f'--amp auto: this CPU has bf16 matrix units ({", ".join(units)})'
    return 'off', ('--amp auto: this CPU has no bf16 matrix units (torch reports CPU capability '
                   f'{torch.backends.cpu.get_cpu_capability()}), so bf16 would be emulated')


def _set_tf32(enabled):
    """TF32 for cuDNN convolutions and CUDA matrix products, through the API this torch has."""
    conv = getattr(torch.backends.cudnn, 'conv', None)
    if conv is not None and hasattr(conv, 'fp32_precision'):
        precision = 'tf32' if enabled else 'ieee'
        conv.fp32_precision = precision
        torch.backends.cuda.matmul.fp32_precision = precision
    else:
        torch.backends.cudnn.allow_tf32 = enabled
        torch.backends.cuda.matmul.allow_tf32 = enabled


class Precision:
    """The precision a script runs in, chosen from `--amp`, the device and whether it trains.

    autocast(): the context for forward passes. scaler: a GradScaler for fp16 training (disabled otherwise).
    channels_last: whether networks and inputs use the channels-last memory format.
    label: 'fp32', 'bf16', 'fp16' (TF32 is off in fp32 runs on CUDA), for logs and benchmark rows;
    reason: why, e.g. '--amp auto: this CPU has bf16 matrix units (AMX)'. channels_last=False forces the
    contiguous layout (the release's, for reference measurements)."""

    def __init__(self, amp, device, training=False, channels_last=None):
        amp, self.reason = choose_amp(amp, device)
        if amp == 'fp16' and device.type != 'cuda':
            raise InputError('--amp fp16 needs a CUDA device: use --amp bf16 or off on the CPU')
        self.name, self.device = amp, device
        self.dtype = AMP_DTYPES[amp]
        if channels_last is None:  # where it measured faster
            channels_last = self.dtype is not None or (device.type == 'cpu' and not training)
        self.channels_last = channels_last
        if device.type == 'cuda':
            _set_tf32(False)  # off: true fp32; under autocast the ops kept in fp32 stay exact too
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == 'fp16')

    @functools.cached_property
    def frozen(self):
        """The precision of a frozen network that a training runs without gradients (trainLPG.py's backbone):
        the same autocast, in the memory format of inference."""
        return Precision(self.name, self.device, training=False)

    @property
    def label(self):
        return 'fp32' if self.dtype is None else self.name

    def describe(self):
        """One line for the log: the precision and why it was chosen."""
        layout = ', channels-last' if self.channels_last else ''
        return f'precision: {self.label}{layout} ({self.reason})'

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare_model(self, model):
        """The model on the device, in channels-last when that helps."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def prepare_input(self, tensor):
        tensor = tensor.to(self.device, non_blocking=True)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor
