"""The registries behind the scripts' choices by name: backbones (--model_type), datasets (--dataset) and
pseudo-mask methods (--method). Each is a dict {name: spec} (a spec has a `name`) that refuses a second entry of a
name and names the choices when asked for an unknown one."""
from .errors import InputError


class Registry(dict):
    """kind: what an entry is, in messages ('backbone'); flag: what the user chose it by ('--model_type');
    unknown: the error an unknown name raises; ordered: names in sorted order (else in registration order)."""

    def __init__(self, kind, flag, unknown=InputError, ordered=False):
        super().__init__()
        self.kind, self.flag, self.unknown, self.ordered = kind, flag, unknown, ordered

    def register(self, spec):
        """Add `spec` under its name; returns it."""
        if spec.name in self:
            raise InputError(f'a {self.kind} named {spec.name!r} is already registered')
        self[spec.name] = spec
        return spec

    def names(self):
        return sorted(self) if self.ordered else list(self)

    def entry(self, name):
        """The spec registered as `name`, or the `unknown` error naming the choices."""
        if name not in self:
            raise self.unknown(f'unknown {self.flag} {name!r}: expected one of {", ".join(self.names())}')
        return self[name]
