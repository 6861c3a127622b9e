"""The one training augmentation every dataset shares: random scale, pad, crop, flip.

Image and masks go through the same geometric steps, so image, label and box mask stay aligned."""
import cv2
import numpy as np
import torch

# dtypes cv2.resize handles directly with INTER_NEAREST; others are converted and back.
_CV2_MASK_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)


def resize_nearest(mask, width, height):
    """cv2.INTER_NEAREST resize of an HxW mask of any integer/bool dtype, keeping the dtype."""
    mask = np.asarray(mask)
    if mask.dtype.type in _CV2_MASK_DTYPES:
        return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    resized = cv2.resize(mask.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(mask.dtype)


def pil_nearest_indices(in_size, out_size, device=None):
    """Source index of each output index under PIL's NEAREST resize: the cell centre, (j + 0.5) * in / out
    truncated. For 321 -> 41 that is 3, 11, 19, ...; `F.interpolate(mode='nearest')` takes j * in / out,
    0, 7, 15, ..., the cells' top-left corners, about 4 pixels off.

    PIL reaches the centres by adding in / out to 0.5 * in / out once per output pixel, in double precision;
    the sum is kept here too, because at centres that fall on an integer (138 -> 39, j = 32: 115) its
    rounding decides the pixel (PIL takes 114)."""
    step = in_size / out_size
    centres = np.add.accumulate(np.concatenate([[0.5 * step], np.full(out_size - 1, step)]))
    indices = np.minimum(centres.astype(np.int64), in_size - 1)
    return torch.from_numpy(indices).to(device)


def resize_labels(labels, size):
    """Label maps (..., H, W) resized to size (h, w) the way the release resizes loss labels: PIL's NEAREST,
    which samples cell centres. Any dtype and device; values are copied, never interpolated."""
    height, width = labels.shape[-2:]
    rows = pil_nearest_indices(height, size[0], labels.device)
    cols = pil_nearest_indices(width, size[1], labels.device)
    return labels[..., rows[:, None], cols]


def _scaled_span(start, end, size, new_size):
    """Indices of the resized axis whose nearest-neighbour source lies in start..end (inclusive).

    Resizes a 1-D indicator with the same cv2 call as the masks, so the span is exactly where the
    resized box mask is, whatever rounding cv2 uses. Falls back to the nearest index when the box
    is thinner than one resized pixel."""
    start = min(max(int(start), 0), size - 1)
    end = min(max(int(end), start), size - 1)
    indicator = np.zeros((1, size), np.uint8)
    indicator[0, start:end + 1] = 1
    hits = np.flatnonzero(cv2.resize(indicator, (new_size, 1), interpolation=cv2.INTER_NEAREST)[0])
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

    crop_size: side of the square output. scales: the scale factors drawn uniformly.
    round_size: how a scaled side becomes an integer: `round` (default) or `int` (truncation, as the release).
    rng: a numpy Generator, used as is (seedable; for tests and single-process use: DataLoader
    workers would each get a copy of it and draw the same augmentations).
    seed: otherwise (an int, or None), each process seeds its own generator from
    (seed, torch.initial_seed()), so DataLoader workers, whose torch seeds differ, draw different
    augmentations, and a run is reproducible given torch.manual_seed. An int rng counts as seed."""

    def __init__(self, crop_size, scales=(0.5, 0.75, 1.0, 1.25, 1.5), flip=True, rng=None, seed=None,
                 round_size=round):
        if int(crop_size) <= 0:
            raise ValueError(f'crop_size must be positive, got {crop_size}')
        if not scales or any(scale <= 0 for scale in scales):
            raise ValueError(f'scales must be a non-empty list of positive factors, got {scales}')
        self.crop_size = int(crop_size)
        self.scales = tuple(float(scale) for scale in scales)
        self.flip = bool(flip)
        self.round_size = round_size
        if rng is not None and not isinstance(rng, (np.random.Generator, int, np.integer)):
            raise TypeError(f'rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}')
        if isinstance(rng, (int, np.integer)):
            rng, seed = None, rng if seed is None else seed
        if seed is not None and int(seed) < 0:
            raise ValueError(f'seed must be a non-negative int, got {seed}')
        self._fixed_rng = rng
        self._seed = seed
        self._process_rng = None
        self._process_key = None

    @property
    def rng(self):
        """The generator for this process (re-created when torch's initial seed changes, i.e. in a new worker)."""
        if self._fixed_rng is not None:
            return self._fixed_rng
        key = torch.initial_seed()
        if self._process_rng is None or self._process_key != key:
            entropy = [key] if self._seed is None else [int(self._seed), key]
            self._process_rng = np.random.default_rng(entropy)
            self._process_key = key
        return self._process_rng

    def __call__(self, image, masks, mask_pad_values, overlap_box=None):
        """image: HxWx3 float32, already mean-subtracted (padding with 0 is padding with the mean).
        masks: list of HxW arrays, resized with nearest and padded with the matching mask_pad_values.
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
            masks = [resize_nearest(mask, new_width, new_height) for mask in masks]
        span_x = span_y = None
        if overlap_box is not None:
            x1, y1, x2, y2 = overlap_box
            span_x = _scaled_span(x1, x2, width, new_width)
            span_y = _scaled_span(y1, y2, height, new_height)

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
