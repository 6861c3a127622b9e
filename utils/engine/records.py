"""Completion records: the small JSON each step writes in its output folder, last, naming what its outputs
were made from, so that a rerun reuses only what the same inputs produced.

A record holds the settings that shape the outputs (the flags, less those that only change how a run
executes), the identity of each input (a file's size and modification time; a folder's number of files,
their total size and latest time), the target (what "finished" means, e.g. the iteration count), the state
('started', 'incomplete' or 'done') and a summary. A rerun with the same settings and inputs continues or
skips; one with other settings or inputs is refused, with the differences named, unless --overwrite.
"""
import json
import os
from typing import Callable, NamedTuple

from .errors import InputError
from .files import write_json

RECORD = 'record.json'


def path_identity(path):
    """Size and modification time of a file, or count, total size and latest time of a folder's files."""
    if path is None:
        return None
    path = os.path.abspath(path)
    if os.path.isfile(path):
        stat = os.stat(path)
        return {'path': path, 'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns}
    if os.path.isdir(path):
        files = [entry.stat() for entry in os.scandir(path) if entry.is_file() and not entry.name.startswith('.')]
        return {'path': path, 'files': len(files), 'size': sum(s.st_size for s in files),
                'mtime_ns': max((s.st_mtime_ns for s in files), default=0)}
    return {'path': path, 'missing': True}


def settings_of(args, output_flags):
    """The settings a step's record holds: the flags in `output_flags` (which each script declares next to its
    parser as OUTPUT_FLAGS), paths made absolute."""
    def normal(value):
        if isinstance(value, str) and os.path.exists(value):
            return os.path.abspath(value)
        return list(value) if isinstance(value, tuple) else value
    return {key: normal(getattr(args, key)) for key in sorted(output_flags)}


class Record:
    """The record of one step's output folder. settings: dict; inputs: {name: path or None}; target: what a
    finished run reached (compared only to decide "done")."""

    def __init__(self, folder, settings, inputs, target=None, name=RECORD):
        self.folder = folder
        self.path = os.path.join(folder, name)
        self.identity = json.loads(json.dumps({'settings': settings,
                                               'inputs': {name: path_identity(p) for name, p in inputs.items()}}))
        self.target = json.loads(json.dumps(target))

    def stored(self):
        if not os.path.isfile(self.path):
            return None
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {'state': 'unreadable'}

    def differences(self, stored):
        """Names of the settings and inputs in which `stored` differs from this run."""
        old = stored.get('identity', {})
        names = []
        for part in ('settings', 'inputs'):
            mine, theirs = self.identity[part], old.get(part, {})
            names += [f'--{key}' if part == 'settings' else key
                      for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]
        return names

    def is_done(self, outputs_present=lambda summary: True):
        """Finished with the same settings, inputs and target, and its outputs still there (outputs_present
        gets the stored summary): a rerun has nothing to do."""
        stored = self.stored()
        return (stored is not None and stored.get('state') == 'done' and not self.differences(stored)
                and stored.get('target') == self.target and outputs_present(stored.get('summary', {})))

    def begin(self, has_outputs, overwrite, clear, what):
        """Before a step writes anything. Returns the stored state of a compatible earlier run ('started',
        'incomplete', 'done') or 'new'. Outputs of an unknown run, or of other settings or inputs, are
        refused unless overwrite, in which case clear() removes them first."""
        stored = self.stored()
        if stored is not None and stored.get('state') in ('started', 'incomplete', 'done') \
                and not self.differences(stored):
            return stored['state']
        if stored is not None and stored.get('state') == 'started' and not has_outputs:
            stored = None  # a run that stopped before writing anything holds nothing to protect
        if stored is not None or has_outputs:
            if not overwrite:
                if stored is None or stored.get('state') == 'unreadable':
                    reason = 'outputs of an unknown run (no readable record.json)'
                else:
                    reason = 'outputs made with other ' + ', '.join(self.differences(stored))
                raise InputError(f'{self.folder} already holds {what}: {reason}. Pass --overwrite to replace them, '
                                 'or choose another output folder')
            clear()
        self.write('started')
        return 'new'

    def write(self, state, summary=None):
        write_json(self.path, {'state': state, 'identity': self.identity, 'target': self.target,
                               'summary': summary or {}})


class Completion(NamedTuple):
    """A step's completion, as one function of each script gives it (its `completion(args)`), for its own run and for
    run_rounds.py's question "is this step done?": the record, and the test that the outputs it counted are still
    there (it gets the stored summary)."""
    record: Record
    outputs_present: Callable[[dict], bool] = lambda summary: True

    def done(self) -> bool:
        return self.record.is_done(self.outputs_present)
