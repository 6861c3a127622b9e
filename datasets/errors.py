"""The project's error type for bad input: a file, an annotation, a checkpoint, a flag or an output folder.

Raised where the problem is found, with a message that names the file (or the flag) and the problem;
`run_script` prints it as one line (`error: ...`, exit status 1; a FlagError: exit status 2). Any other
exception is a bug of this code and keeps its traceback. InputError is a ValueError and MissingFile also a
FileNotFoundError, so code that catches those (a per-image failure, for example) catches them too."""
from typing import NamedTuple


class InputError(ValueError):
    """Bad input, named in the message."""


class FlagError(InputError):
    """A flag value, or a combination of flags, that cannot work: refused before any work, in one line with exit
    status 2 (as argparse refuses a value it cannot parse)."""


class MissingFile(InputError, FileNotFoundError):
    """An input file or folder that is not there."""


class UnreadableImage(NamedTuple):
    """What a batch job's dataset returns in place of a sample for an image it cannot use (missing, undecodable,
    or of a size its annotation contradicts): the job goes on without it and records the reason."""
    image_id: str
    error: str
