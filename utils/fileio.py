"""Atomic file writing: a reader (or a resumed run) sees the old file or the complete new one, never a torn one."""
import contextlib
import json
import os
import uuid


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
