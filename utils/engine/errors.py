"""The project's error types for bad input (a file, an annotation, a checkpoint, a flag or an output folder), and
the listing of many problems in one message.

Raised where the problem is found, with a message that names the file (or the flag) and the problem;
`run_script` prints it as one line (`error: ...`, exit status 1; a FlagError: exit status 2). Any other
exception is a bug of this code and keeps its traceback. InputError is a ValueError and MissingFile also a
FileNotFoundError, so code that catches those (a per-image failure, for example) catches them too."""
from typing import Iterable, Mapping


class InputError(ValueError):
    """Bad input, named in the message."""


class FlagError(InputError):
    """A flag value, or a combination of flags, that cannot work: refused before any work, in one line with exit
    status 2 (as argparse refuses a value it cannot parse)."""


class MissingFile(InputError, FileNotFoundError):
    """An input file or folder that is not there."""


SHOW = 10  # problems listed in a report; the rest are counted


def listing(lines: Iterable[str], show: int = SHOW) -> str:
    """Lines of a report, indented: the first `show`, then how many more there are."""
    lines = list(lines)
    return '\n  '.join(lines[:show]) + (f'\n  ... and {len(lines) - show} more' if len(lines) > show else '')


def failure_listing(failed: Mapping[str, str], show: int = SHOW) -> str:
    """The listing of {image_id: reason} of a batch job's failed images."""
    return listing((f'{image_id}: {reason}' for image_id, reason in failed.items()), show)


def report_problems(problems: Mapping[str, list[str]], total: int, what: str, skip_bad: bool) -> None:
    """Nothing when there are none. Otherwise a ValueError listing them (the first SHOW, then a count), or,
    with skip_bad, a printed notice of how many are left out."""
    if not problems:
        return
    lines = listing(line for found in problems.values() for line in found)
    if not skip_bad:
        raise InputError(f'{len(problems)} of {total} {what} are bad:\n  {lines}\n'
                         'Fix them, or pass --skip_bad to leave them out.')
    print(f'--skip_bad: leaving out {len(problems)} of {total} {what}:\n  {lines}', flush=True)
