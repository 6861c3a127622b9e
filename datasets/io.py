"""Images, label PNGs and network input tensors: decoding in the frame the annotation declares, label PNGs
written atomically (through utils.engine.files).
"""
import io
import os
from typing import NamedTuple, Optional

import cv2
import numpy as np
import torch
from PIL import Image

from utils.engine.errors import InputError, MissingFile
from utils.engine.files import atomic_open

from .constants import MEAN_BGR, VOC_PALETTE

# Where a complete JPEG / PNG ends: the end-of-image marker, the IEND chunk (in the last bytes; a few files
# carry some trailing bytes after it).
_END_MARKERS = ((b'\xff\xd8', b'\xff\xd9'), (b'\x89PNG', b'IEND'))


class ImageFrame(NamedTuple):
    """The size an annotation declares for its image (a VOC XML's <size>, a COCO json's width/height, a label
    PNG's own size), and what declares it, as messages name it ('<declared_by> is <width>x<height>')."""
    height: int
    width: int
    declared_by: str


class DecodedImage(NamedTuple):
    """An image in the frame its annotation declares, and its EXIF orientation tag (1 when it has none)."""
    image: np.ndarray
    orientation: int


# EXIF orientation tag values that swap width and height (a photo taken with the camera turned), and what
# each does to the stored pixels to show them upright.
_TRANSPOSING = {5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
                7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}
_ORIENTATION_TAG = 0x0112


def orientation_tag(data: bytes) -> int:
    """The EXIF orientation tag (1..8) of an encoded image; 1 when it has none or its EXIF cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            tag = header.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # any damage to the EXIF block: the tag is unknown, and the pixels decide the frame
        return 1
    return tag if isinstance(tag, int) and 1 <= tag <= 8 else 1


def decode_image(path: str, frame: Optional[ImageFrame] = None) -> DecodedImage:
    """Image file -> DecodedImage: float32 HxWx3 BGR (not mean-subtracted) in the pixel frame its annotation
    declares, and its orientation tag.

    Boxes, XML sizes, COCO sizes and label PNGs are given in the stored pixel frame, while a photo's EXIF
    orientation tag asks a viewer (and cv2.imread) to turn it. So the tag is ignored, unless only the turned
    size matches the declared `frame` (an ImageFrame; None: nothing declares one). A decoded size that matches
    neither is an InputError naming the file and both sizes. A truncated JPEG or PNG is an error too: OpenCV
    would decode it with the missing part filled grey."""
    if not os.path.isfile(path):
        raise MissingFile(f'image file not found: {path}')
    with open(path, 'rb') as handle:
        data = handle.read()
    if not data:
        raise InputError(f'image file {path} is empty (0 bytes)')
    for start, end in _END_MARKERS:
        if data.startswith(start) and end not in data[-1024:]:
            raise InputError(f'image file {path} is truncated (its end-of-image marker is missing)')
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as error:  # every decode failure is the file's, named as such
        raise InputError(f'could not decode image file {path}: {str(error).strip()}') from None
    if image is None:
        raise InputError(f'could not decode image file {path} (corrupt or not an image)')
    orientation = orientation_tag(data)
    height, width = image.shape[:2]
    if frame is not None and (height, width) != (frame.height, frame.width):
        if orientation in _TRANSPOSING and (width, height) == (frame.height, frame.width):
            image = np.ascontiguousarray(_TRANSPOSING[orientation](image))
        else:
            turned = (f' (and {height}x{width} turned by its EXIF orientation tag {orientation})'
                      if orientation in _TRANSPOSING else '')
            raise InputError(f'image file {path} is {width}x{height}{turned}, but {frame.declared_by} is '
                             f'{frame.width}x{frame.height}')
    return DecodedImage(image.astype(np.float32), orientation)


def read_image_bgr(path: str, frame: Optional[ImageFrame] = None) -> np.ndarray:
    """Image file -> float32 HxWx3 BGR array (not mean-subtracted), in the frame `frame` declares (see
    decode_image)."""
    return decode_image(path, frame).image


def label_frame(path: str) -> ImageFrame:
    """The ImageFrame a label PNG declares for its image: its own size (read from the header)."""
    try:
        with Image.open(path) as label_image:
            width, height = label_image.size
    except (OSError, ValueError) as error:
        raise InputError(f'could not read label file {path}: {error}') from error
    return ImageFrame(height, width, f'its label {path}')


def read_label(path: str) -> np.ndarray:
    """Single-channel label PNG -> HxW array of its index values (uint8 for 'P'/'L' PNGs).

    Palette PNGs are read as their indices, never as colours."""
    if not os.path.isfile(path):
        raise MissingFile(f'label file not found: {path}')
    try:
        with Image.open(path) as label_image:
            mode = label_image.mode
            label = np.array(label_image)
    except (OSError, ValueError) as error:
        raise InputError(f'could not read label file {path}: {error}') from error
    if mode in ('P', 'L'):
        return label.astype(np.uint8, copy=False)
    if mode in ('I', 'I;16', 'I;16B', 'I;16L'):
        return label.astype(np.int64)
    raise InputError(f'label file {path} has PIL mode {mode!r}; expected a single-channel '
                     "('P' palette or 'L' grayscale) PNG of class indices")


def _save_png_atomic(path, pil_image):
    with atomic_open(path) as handle:
        pil_image.save(handle, format='PNG')


def _as_uint8_label(label, path):
    label = np.asarray(label)
    if label.ndim != 2:
        raise InputError(f'cannot save {path}: label must be HxW, got shape {label.shape}')
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise InputError(f'cannot save {path}: label values must lie in 0..255')
        label = label.astype(np.uint8)
    return label


def save_palette_png(path: str, label: np.ndarray) -> None:
    """Write an HxW label as a 'P'-mode PNG with the VOC palette (tmp file + os.replace)."""
    label_image = Image.fromarray(_as_uint8_label(label, path))  # uint8 HxW -> 'L'
    label_image.putpalette(VOC_PALETTE)  # turns the 'L' image into 'P', keeping the indices
    _save_png_atomic(path, label_image)


def save_gray_png(path: str, label: np.ndarray) -> None:
    """Write an HxW uint8 label as an 8-bit 'L'-mode PNG (tmp file + os.replace)."""
    _save_png_atomic(path, Image.fromarray(_as_uint8_label(label, path)))  # uint8 HxW -> 'L'


def to_tensor_image(image_bgr: np.ndarray) -> torch.Tensor:
    """HxWx3 BGR float image -> 3xHxW float tensor minus MEAN_BGR (the released checkpoints' input)."""
    image = np.asarray(image_bgr, dtype=np.float32) - MEAN_BGR
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def chw_tensor(image_mean_subtracted: np.ndarray) -> torch.Tensor:
    """HxWx3 image that is already mean-subtracted -> 3xHxW float tensor."""
    image = np.asarray(image_mean_subtracted, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
