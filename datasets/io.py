"""File I/O shared by every step: atomic writes, images, label PNGs, JSON.

Every output is written atomically (a temporary file beside it, then os.replace), so a reader or a
resumed run sees the old file or the complete new one, never a torn one.
"""
import contextlib
import json
import os
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from PIL import Image

from .constants import MEAN_BGR, VOC_PALETTE


@contextlib.contextmanager
def atomic_open(path, mode='wb'):
    """Open a temporary file beside `path` (parent folders created); on success it replaces `path`.

    mode is 'wb' or 'w'. The temporary file is created with open(..., 'x'), not mkstemp, so the result
    gets the usual umask permissions.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp_path = os.path.join(directory, f'.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp')
    try:
        with open(tmp_path, mode.replace('w', 'x')) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def write_json(path, data, indent=2):
    """Write `data` as JSON to `path` atomically."""
    with atomic_open(path, 'w') as handle:
        json.dump(data, handle, indent=indent)


def folder_in_root(root, folder):
    """`folder` if absolute, else `root/folder`; it must exist."""
    directory = folder if os.path.isabs(folder) else os.path.join(root, folder)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f'label directory not found: {directory}')
    return directory


def read_image_bgr(path):
    """Image file -> float32 HxWx3 BGR array (not mean-subtracted)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'could not decode image file {path} (corrupt or not an image)')
    return image.astype(np.float32)


def read_label(path):
    """Single-channel label PNG -> HxW array of its index values (uint8 for 'P'/'L' PNGs).

    Palette PNGs are read as their indices, never as colours."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'label file not found: {path}')
    try:
        with Image.open(path) as label_image:
            mode = label_image.mode
            label = np.array(label_image)
    except (OSError, ValueError) as error:
        raise ValueError(f'could not read label file {path}: {error}') from error
    if mode in ('P', 'L'):
        return label.astype(np.uint8, copy=False)
    if mode in ('I', 'I;16', 'I;16B', 'I;16L'):
        return label.astype(np.int64)
    raise ValueError(f'label file {path} has PIL mode {mode!r}; expected a single-channel '
                     "('P' palette or 'L' grayscale) PNG of class indices")


def _save_png_atomic(path, pil_image):
    with atomic_open(path) as handle:
        pil_image.save(handle, format='PNG')


def _as_uint8_label(label, path):
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f'cannot save {path}: label must be HxW, got shape {label.shape}')
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError(f'cannot save {path}: label values must lie in 0..255')
        label = label.astype(np.uint8)
    return label


def save_palette_png(path, label):
    """Write an HxW label as a 'P'-mode PNG with the VOC palette (tmp file + os.replace)."""
    label_image = Image.fromarray(_as_uint8_label(label, path))  # uint8 HxW -> 'L'
    label_image.putpalette(VOC_PALETTE)  # turns the 'L' image into 'P', keeping the indices
    _save_png_atomic(path, label_image)


def save_gray_png(path, label):
    """Write an HxW uint8 label as an 8-bit 'L'-mode PNG (tmp file + os.replace)."""
    _save_png_atomic(path, Image.fromarray(_as_uint8_label(label, path)))  # uint8 HxW -> 'L'


def to_tensor_image(image_bgr):
    """HxWx3 BGR float image -> 3xHxW float tensor minus MEAN_BGR (the released checkpoints' input)."""
    image = np.asarray(image_bgr, dtype=np.float32) - MEAN_BGR
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def chw_tensor(image_mean_subtracted):
    """HxWx3 image that is already mean-subtracted -> 3xHxW float tensor."""
    image = np.asarray(image_mean_subtracted, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class BackgroundWriter:
    """Runs file writes (PNG encoding, .npz saving) in worker threads, off the compute loop's critical path.

    At most `4 * threads` writes wait at a time (a full queue makes submit wait for the oldest); a failed
    write raises in the caller at the next submit or at close. Use as a context manager."""

    def __init__(self, threads=4):
        self.threads = max(1, int(threads))
        self.pool = ThreadPoolExecutor(self.threads)
        self.pending = deque()

    def submit(self, write, *args):
        self.pending.append(self.pool.submit(write, *args))
        while len(self.pending) > 4 * self.threads or (self.pending and self.pending[0].done()):
            self.pending.popleft().result()

    def close(self):
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
