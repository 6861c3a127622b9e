"""The one training augmentation every dataset shares: random scale, pad, crop, flip.

Image and masks go through the same geometric steps, so image, label and box mask stay aligned."""
from typing import Callable, Optional, Sequence, TypeVar

import cv2
import numpy as np
import torch

from utils.engine.errors import InputError

# Label maps a NearestResize takes, and gives back of the same kind.
_Labels = TypeVar('_Labels', np.ndarray, torch.Tensor)


def centre_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output index when sampling cell centres, as PIL's `Image.resize(NEAREST)` does:
    (j + 0.5) * in / out, truncated. For 321 -> 41 that is 3, 11, 19, ...; 512 -> 128 gives 2, 6, 10, ...

    PIL reaches the centres by adding in / out to 0.5 * in / out once per output pixel, in double precision;
    the sum is kept here too, because at centres that fall on an integer (138 -> 39, j = 32: 115) its
    rounding decides the pixel (PIL takes 114)."""
    step = in_size / out_size
    centres = np.add.accumulate(np.concatenate([[0.5 * step], np.full(out_size - 1, step)]))
    return np.minimum(centres.astype(np.int64), in_size - 1)


def top_left_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output index when sampling the top-left corner of each cell, as
    `cv2.resize(INTER_NEAREST)` does: floor(j * (1 / (out / in))), in double precision as OpenCV computes it.
    For 512 -> 128 that is 0, 4, 8, ...; `F.interpolate(mode='nearest')` samples the same corners."""
    inverse_scale = 1.0 / (out_size / in_size)
    return np.minimum(np.floor(np.arange(out_size) * inverse_scale).astype(np.int64), in_size - 1)


class NearestResize:
    """A nearest-neighbour resize of label maps (..., H, W) to size (h, w): each output pixel copies the
    source pixel that `source_indices(in_size, out_size)` names, per axis. Works on numpy arrays and torch
    tensors of any dtype and device; values are copied, never interpolated."""

    def __init__(self, name: str, source_indices: Callable[[int, int], np.ndarray]):
        self.name, self.source_indices = name, source_indices

    def __repr__(self) -> str:
        return f'NearestResize({self.name})'

    def __call__(self, labels: _Labels, size: Sequence[int]) -> _Labels:
        height, width = labels.shape[-2:]
        rows, cols = self.source_indices(height, size[0]), self.source_indices(width, size[1])
        if isinstance(labels, torch.Tensor):
            rows, cols = torch.from_numpy(rows).to(labels.device), torch.from_numpy(cols).to(labels.device)
        return labels[..., rows[:, None], cols]


# The two conventions the release uses, each by its library's name for it.
nearest_centres = NearestResize('cell centres, PIL Image.NEAREST', centre_indices)
nearest_top_left = NearestResize('top-left corners, cv2.INTER_NEAREST', top_left_indices)


def _scaled_span(start, end, size, new_size, label_resize):
    """Indices of the resized axis whose nearest-neighbour source lies in start..end (inclusive), under
    the masks' own resize convention, so the span is exactly where the resized box mask is. Falls back to
    the nearest index when the box is thinner than one resized pixel."""
    start = min(max(int(start), 0), size - 1)
    end = min(max(int(end), start), size - 1)
    sources = label_resize.source_indices(size, new_size)
    hits = np.flatnonzero((sources >= start) & (sources <= end))
    if hits.size:
        return int(hits[0]), int(hits[-1])
    centre = min(int((start + end + 1) * 0.5 * new_size / size), new_size - 1)
    return centre, centre


def _crop_offset(rng, padded_size, crop_size, span=None):
    """Random crop start; with span=(lo, hi) the window [offset, offset + crop) intersects lo..hi."""
    low, high = 0, padded_size - crop_size
    if span is not None:
        low = max(low, span[0] - crop_size + 1)
        high = min(high, span[1])
    return int(rng.integers(low, high + 1))


class ScalePadCropFlip:
    """Random scale -> pad bottom/right to the crop -> random crop -> random horizontal flip.

    crop_size: side of the square output. label_resize: how masks are rescaled, `nearest_centres` or
    `nearest_top_left` (the release's datasets differ: see their uses). scales: the scale factors drawn uniformly.
    round_size: how a scaled side becomes an integer: `round` (default) or `int` (truncation, as the release).
    rng: a numpy Generator, used as is (seedable; for tests and single-process use: DataLoader
    workers would each get a copy of it and draw the same augmentations).
    seed: otherwise (an int, or None), each process seeds its own generator from
    (seed, torch.initial_seed()), so DataLoader workers, whose torch seeds differ, draw different
    augmentations, and a run is reproducible given torch.manual_seed. An int rng counts as seed.
    start_sample(draw): the draws of the next sample come from a generator seeded by (seed, draw) instead, its
    place in a training run's stream (utils/engine/sample_stream.py), whichever process reads it."""

    def __init__(self, crop_size: int, label_resize: NearestResize,
                 scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5), flip: bool = True,
                 rng: Optional[np.random.Generator | int] = None, seed: Optional[int] = None,
                 round_size: Callable[[float], int] = round):
        if int(crop_size) <= 0:
            raise InputError(f'crop_size must be positive, got {crop_size}')
        if not scales or any(scale <= 0 for scale in scales):
            raise InputError(f'scales must be a non-empty list of positive factors, got {scales}')
        if not isinstance(label_resize, NearestResize):
            raise TypeError(f'label_resize must be nearest_centres or nearest_top_left, got {label_resize!r}')
        self.crop_size = int(crop_size)
        self.label_resize = label_resize
        self.scales = tuple(float(scale) for scale in scales)
        self.flip = bool(flip)
        self.round_size = round_size
        if rng is not None and not isinstance(rng, (np.random.Generator, int, np.integer)):
            raise TypeError(f'rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}')
        if isinstance(rng, (int, np.integer)):
            rng, seed = None, rng if seed is None else seed
        if seed is not None and int(seed) < 0:
            raise InputError(f'seed must be a non-negative int, got {seed}')
        self._fixed_rng = rng
        self._seed = seed
        self._process_rng = None
        self._process_key = None
        self._sample_rng = None

    def start_sample(self, draw: int) -> None:
        """Seed the draws of the sample read next by its place in the run, (seed, draw)."""
        self._sample_rng = np.random.default_rng([int(self._seed or 0), int(draw)])

    @property
    def rng(self) -> np.random.Generator:
        """The generator of the sample being read (start_sample), else this process's own (re-created when
        torch's initial seed changes, i.e. in a new worker)."""
        if self._fixed_rng is not None:
            return self._fixed_rng
        if self._sample_rng is not None:
            return self._sample_rng
        key = torch.initial_seed()
        if self._process_rng is None or self._process_key != key:
            entropy = [key] if self._seed is None else [int(self._seed), key]
            self._process_rng = np.random.default_rng(entropy)
            self._process_key = key
        return self._process_rng

    def __call__(self, image: np.ndarray, masks: Sequence[np.ndarray], mask_pad_values: Sequence[int],
                 overlap_box: Optional[Sequence[float]] = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """image: HxWx3 float32, already mean-subtracted (padding with 0 is padding with the mean).
        masks: list of HxW arrays, resized with label_resize and padded with the matching mask_pad_values.
        overlap_box: optional (x1, y1, x2, y2), inclusive pixel coordinates in the *input* image; it is
        scaled with the image and the crop window is chosen to intersect it.
        Returns (image crop_size x crop_size x 3 float32, list of crop_size x crop_size masks)."""
        image = np.asarray(image, dtype=np.float32)
        masks = [np.asarray(mask) for mask in masks]
        if len(masks) != len(mask_pad_values):
            raise ValueError(f'{len(masks)} masks but {len(mask_pad_values)} pad values')
        height, width = image.shape[:2]
        for mask in masks:
            if mask.shape != (height, width):
                raise ValueError(f'mask shape {mask.shape} does not match image shape {(height, width)}')
        rng = self.rng

        scale = self.scales[int(rng.integers(len(self.scales)))]
        new_height = max(1, int(self.round_size(height * scale)))
        new_width = max(1, int(self.round_size(width * scale)))
        if (new_height, new_width) != (height, width):
            image = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
            masks = [self.label_resize(mask, (new_height, new_width)) for mask in masks]
        span_x = span_y = None
        if overlap_box is not None:
            x1, y1, x2, y2 = overlap_box
            span_x = _scaled_span(x1, x2, width, new_width, self.label_resize)
            span_y = _scaled_span(y1, y2, height, new_height, self.label_resize)

        crop = self.crop_size
        pad_height, pad_width = max(crop - new_height, 0), max(crop - new_width, 0)
        if pad_height or pad_width:
            image = np.pad(image, ((0, pad_height), (0, pad_width), (0, 0)), constant_values=0.0)
            masks = [np.pad(mask, ((0, pad_height), (0, pad_width)), constant_values=pad_value)
                     for mask, pad_value in zip(masks, mask_pad_values)]

        top = _crop_offset(rng, image.shape[0], crop, span_y)
        left = _crop_offset(rng, image.shape[1], crop, span_x)
        image = image[top:top + crop, left:left + crop]
        masks = [mask[top:top + crop, left:left + crop] for mask in masks]

        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
            masks = [mask[:, ::-1] for mask in masks]
        return np.ascontiguousarray(image), [np.ascontiguousarray(mask) for mask in masks]
