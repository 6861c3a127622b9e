"""File I/O shared by every step: atomic writes, images, label PNGs, JSON.

Every output is written atomically (a temporary file beside it, then os.replace), so a reader or a
resumed run sees the old file or the complete new one, never a torn one.
"""
import contextlib
import errno
import fcntl
import functools
import io
import json
import os
import re
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import cv2
import numpy as np
import torch
from PIL import Image

from .constants import MEAN_BGR, VOC_PALETTE
from .errors import InputError, MissingFile

# Temporary files of atomic writes: `.<name>.<32 hex digits>.tmp` beside the file they will replace.
_TEMPORARY = re.compile(r'^\..+\.[0-9a-f]{32}\.tmp$')


def disk_full(error, directory):
    """Whether `error` (or what caused it) is a full disk. torch.save reports a failed write as a RuntimeError
    ('unexpected pos ...'), so a write error with no space left in `directory` counts too."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(error, RuntimeError) and shutil.disk_usage(directory).free < 1 << 20:
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def atomic_open(path, mode='wb'):
    """Open a temporary file beside `path` (parent folders created); on success it replaces `path`.

    mode is 'wb' or 'w'. The temporary file is created with open(..., 'x'), not mkstemp, so the result
    gets the usual umask permissions. On failure the temporary file is removed and `path` is left as it
    was; a full disk is reported as such (OSError ENOSPC naming the file).
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
    except BaseException as error:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        if isinstance(error, Exception) and disk_full(error, directory):
            state = 'the earlier file is intact' if os.path.exists(path) else 'nothing was written'
            raise OSError(errno.ENOSPC, f'no space left on device while writing {path} ({state})') from error
        raise


def remove_files(paths):
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def replace_link(path):
    """Remove `path` if it is a symbolic link, so that what is written there next is a file of its own, never
    the file the link points to (atomic writes replace a link by themselves)."""
    if os.path.islink(path):
        os.unlink(path)


LOCK_NAME = '.lpg.lock'
_HELD_LOCKS = {}  # folder -> the open lock file of a folder this process claimed


def claim_folder(folder):
    """Claim an output folder for this run, then delete the temporary files that a killed earlier run left there
    (returns how many). A folder that a live run holds is refused, naming its process id, so that two runs
    never write (or clean up) one folder; the lock of a killed run is free again, since the OS releases a
    file lock with its process. Held until release_folders() (run_script calls it on the way out)."""
    folder = os.path.abspath(folder)
    if folder not in _HELD_LOCKS:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, LOCK_NAME)
        while True:
            replace_link(path)  # the pid is written into the lock file itself, never through a link
            handle = open(path, 'a+')
            try:
                # A POSIX record lock (lockf), not flock: a forked child (a DataLoader worker) does not inherit it,
                # so a killed run's orphaned workers do not keep its folder locked.
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                handle.seek(0)
                holder = handle.read().strip() or 'unknown'
                handle.close()
                raise SystemExit(f'{folder} is in use by another run (process {holder}): two runs writing one folder '
                                 'would destroy each other\'s files; wait for it to end, or choose another output '
                                 'folder') from None
            try:  # a run that ended meanwhile removed the file we opened: lock the new one instead
                if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f'{os.getpid()}\n')
        handle.flush()
        _HELD_LOCKS[folder] = handle
    return remove_stale_temporaries(folder)


def release_folders(keep=()):
    """Give back the folders this process claimed, but those in `keep` (their lock files are removed)."""
    for folder in [folder for folder in _HELD_LOCKS if folder not in keep]:
        handle = _HELD_LOCKS.pop(folder)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, LOCK_NAME))
        handle.close()


def releases_claims(function):
    """Decorator of a job (a script's main, a labelling run): the folders it claims are given back when it
    returns or raises, so a finished job leaves no lock behind, even when called from Python."""
    @functools.wraps(function)
    def job(*args, **kwargs):
        held = set(_HELD_LOCKS)
        try:
            return function(*args, **kwargs)
        finally:
            release_folders(keep=held)
    return job


def remove_stale_temporaries(folder):
    """Delete the temporary files that writes killed mid-way left in `folder`; returns how many."""
    if not os.path.isdir(folder):
        return 0
    stale = [name for name in os.listdir(folder) if _TEMPORARY.match(name)]
    for name in stale:
        os.remove(os.path.join(folder, name))
    return len(stale)


def write_json(path, data, indent=2):
    """Write `data` as JSON to `path` atomically."""
    with atomic_open(path, 'w') as handle:
        json.dump(data, handle, indent=indent)


def folder_in_root(root, folder):
    """`folder` if absolute, else `root/folder`; it must exist."""
    directory = folder if os.path.isabs(folder) else os.path.join(root, folder)
    if not os.path.isdir(directory):
        raise MissingFile(f'label directory not found: {directory}')
    return directory


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


def orientation_tag(data):
    """The EXIF orientation tag (1..8) of an encoded image; 1 when it has none or its EXIF cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            tag = header.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # any damage to the EXIF block: the tag is unknown, and the pixels decide the frame
        return 1
    return tag if isinstance(tag, int) and 1 <= tag <= 8 else 1


def decode_image(path, frame=None):
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


def read_image_bgr(path, frame=None):
    """Image file -> float32 HxWx3 BGR array (not mean-subtracted), in the frame `frame` declares (see
    decode_image)."""
    return decode_image(path, frame).image


def label_frame(path):
    """The ImageFrame a label PNG declares for its image: its own size (read from the header)."""
    try:
        with Image.open(path) as label_image:
            width, height = label_image.size
    except (OSError, ValueError) as error:
        raise InputError(f'could not read label file {path}: {error}') from error
    return ImageFrame(height, width, f'its label {path}')


def read_label(path):
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
