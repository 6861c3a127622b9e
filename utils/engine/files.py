"""Files that survive a crash: atomic writes, folder claims, and writes off the compute loop.

Every output is written atomically (a temporary file beside it, then os.replace), so a reader or a
resumed run sees the old file or the complete new one, never a torn one. A folder that a job writes into is
claimed with a lock file, so that two runs cannot write the same outputs.
"""
import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Callable, Collection, Iterable, Iterator, Optional, ParamSpec, TypeVar

from .errors import MissingFile

# Temporary files of atomic writes: `.<name>.<32 hex digits>.tmp` beside the file they will replace.
_TEMPORARY = re.compile(r'^\..+\.[0-9a-f]{32}\.tmp$')


def disk_full(error: Optional[BaseException], directory: str) -> bool:
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
def atomic_open(path: str | os.PathLike, mode: str = 'wb') -> Iterator[IO]:
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


def remove_files(paths: Iterable[str]) -> None:
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def replace_link(path: str) -> None:
    """Remove `path` if it is a symbolic link, so that what is written there next is a file of its own, never
    the file the link points to (atomic writes replace a link by themselves)."""
    if os.path.islink(path):
        os.unlink(path)


LOCK_NAME = '.lpg.lock'
_HELD_LOCKS = {}  # folder -> the open lock file of a folder this process claimed


def claim_folder(folder: str) -> int:
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


def release_folders(keep: Collection[str] = ()) -> None:
    """Give back the folders this process claimed, but those in `keep` (their lock files are removed)."""
    for folder in [folder for folder in _HELD_LOCKS if folder not in keep]:
        handle = _HELD_LOCKS.pop(folder)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, LOCK_NAME))
        handle.close()


# The arguments and result of a job that releases_claims wraps: the wrapper keeps its signature.
_Params = ParamSpec('_Params')
_Result = TypeVar('_Result')


def releases_claims(function: Callable[_Params, _Result]) -> Callable[_Params, _Result]:
    """Decorator of a job (a script's main, a labelling run): the folders it claims are given back when it
    returns or raises, so a finished job leaves no lock behind, even when called from Python."""
    @functools.wraps(function)
    def job(*args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        held = set(_HELD_LOCKS)
        try:
            return function(*args, **kwargs)
        finally:
            release_folders(keep=held)
    return job


def remove_stale_temporaries(folder: str) -> int:
    """Delete the temporary files that writes killed mid-way left in `folder`; returns how many."""
    if not os.path.isdir(folder):
        return 0
    stale = [name for name in os.listdir(folder) if _TEMPORARY.match(name)]
    for name in stale:
        os.remove(os.path.join(folder, name))
    return len(stale)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON content of a file the project wrote (a score file, a report, a record)."""
    with open(path) as handle:
        return json.load(handle)


def write_json(path: str | os.PathLike, data: object, indent: Optional[int] = 2) -> None:
    """Write `data` as JSON to `path` atomically."""
    with atomic_open(path, 'w') as handle:
        json.dump(data, handle, indent=indent)


def folder_in_root(root: str, folder: str) -> str:
    """`folder` if absolute, else `root/folder`; it must exist."""
    directory = folder if os.path.isabs(folder) else os.path.join(root, folder)
    if not os.path.isdir(directory):
        raise MissingFile(f'label directory not found: {directory}')
    return directory


class BackgroundWriter:
    """Runs file writes (PNG encoding, .npz saving) in worker threads, off the compute loop's critical path.

    At most `4 * threads` writes wait at a time (a full queue makes submit wait for the oldest); a failed
    write raises in the caller at the next submit or at close. Use as a context manager."""

    def __init__(self, threads: int = 4):
        self.threads = max(1, int(threads))
        self.pool = ThreadPoolExecutor(self.threads)
        self.pending = deque()

    def submit(self, write: Callable[..., object], *args: object) -> None:
        self.pending.append(self.pool.submit(write, *args))
        while len(self.pending) > 4 * self.threads or (self.pending and self.pending[0].done()):
            self.pending.popleft().result()

    def close(self) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> 'BackgroundWriter':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
