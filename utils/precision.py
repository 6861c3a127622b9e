"""Numerical precision of a run: `--amp bf16|fp16|off`, TF32, channels-last.

`off` is true float32: TF32 is switched off for convolutions and matrix products, so a CUDA run computes
what the float32 algorithm computes (up to the order of floating-point sums). With bf16 or fp16 the forward
passes run under autocast; fp16 training scales the loss (GradScaler) to keep small gradients. Convolutions
use the channels-last memory format under autocast on CUDA, where tensor cores prefer it.
"""
import contextlib

import torch

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'off': None}


def add_amp_arg(parser):
    parser.add_argument('--amp', choices=list(AMP_DTYPES), default=None,
                        help='mixed precision: bf16 or fp16 autocast, or off (true float32, TF32 disabled); '
                        'default: bf16 on CUDA, off on the CPU')


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
    """The precision a script runs in, chosen from `--amp` and the device.

    autocast(): the context for forward passes. scaler: a GradScaler for fp16 training (disabled otherwise).
    channels_last: whether networks and inputs use the channels-last memory format.
    label: 'fp32', 'bf16', 'fp16' (TF32 is off in fp32 runs on CUDA), for logs and benchmark rows."""

    def __init__(self, amp, device):
        if amp is None:
            amp = 'bf16' if device.type == 'cuda' else 'off'
        if amp == 'fp16' and device.type != 'cuda':
            raise SystemExit('--amp fp16 needs a CUDA device: use --amp bf16 or off on the CPU')
        self.name, self.device = amp, device
        self.dtype = AMP_DTYPES[amp]
        self.channels_last = self.dtype is not None and device.type == 'cuda'
        if device.type == 'cuda':
            _set_tf32(False)  # off: true fp32; under autocast the ops kept in fp32 stay exact too
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == 'fp16')

    @property
    def label(self):
        return 'fp32' if self.dtype is None else self.name

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
