"""The scripts' command lines: a parser that refuses a bad flag in one line with exit status 2, and the number
types that say which values each numeric flag takes. A value is checked where it is parsed, so a refused run
has read and written nothing; the range each flag takes is appended to its --help.

    parser = ScriptParser(__doc__)
    parser.add_argument('--batch_size', type=Number(int, low=1, high=MAX_BATCH), default=8)
"""
import argparse
import math

# The largest image side, test size, crop or --max_side any script takes: a padded 8192 x 8192 input already holds
# 67 million pixels per image, beyond the memory of any GPU for these networks.
MAX_SIDE = 8192
# The smallest training crop of a segmentation backbone: their output stride is 8, so a smaller crop leaves an
# output of one cell or two across.
MIN_BACKBONE_CROP = 16
# The largest batch any script takes.
MAX_BATCH = 4096
# The most worker processes, parallel jobs or threads any script starts.
MAX_PROCESSES = 256
# numpy's seeds are 32-bit.
MAX_SEED = 2 ** 32 - 1


class Number:
    """An argparse type: an int (kind=int) or a finite float from `low` to `high` (None: unbounded), above
    `above` where given (an open bound: a float that must be positive), and a multiple of `multiple` where
    given. meaning: what a value means beyond the plain number (e.g. '0: keep all'), appended to --help with the
    range. A value outside is refused naming the value and the values that work; argparse adds the flag."""

    def __init__(self, kind=int, low=None, high=None, above=None, multiple=None, meaning=None):
        self.kind, self.low, self.high, self.above = kind, low, high, above
        self.multiple, self.meaning = multiple, meaning
        self.__name__ = kind.__name__  # argparse names a type by it

    def describe(self):
        """The values that work, in words: 'an integer from 1 to 4096', 'a multiple of 128 from 128 to 8192'."""
        what = 'an integer' if self.kind is int else 'a number'
        if self.multiple:
            what = f'a multiple of {self.multiple}'
        if self.above is not None:
            what += f' above {self.above:g}'
        if self.low is not None and self.high is not None:
            what += f' from {self.low:g} to {self.high:g}'
        elif self.low is not None:
            what += f' of {self.low:g} or more'
        elif self.high is not None:
            what += f' of at most {self.high:g}'
        return what + (f'; {self.meaning}' if self.meaning else '')

    def accepts(self, value):
        return (not (isinstance(value, float) and not math.isfinite(value))
                and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
                and (self.above is None or value > self.above)
                and (not self.multiple or value % self.multiple == 0))

    def __call__(self, text):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not {self.describe()}') from None
        if not self.accepts(value):
            raise argparse.ArgumentTypeError(f'{text} is outside the values that work: {self.describe()}')
        return value


def count(low=1, high=None, meaning=None):
    """An integer count of `low` or more (at most `high`)."""
    return Number(int, low=low, high=high, meaning=meaning)


POSITIVE = Number(float, above=0)  # learning rates, loss weights
NON_NEGATIVE = Number(float, low=0)  # weight decay
SEED = count(0, MAX_SEED)
WORKERS = count(0, MAX_PROCESSES, meaning='0 loads the data in the main process')
JOBS = count(1, MAX_PROCESSES)
BATCH = count(1, MAX_BATCH)
ITERATIONS = count(1)
TEST_SIZE = count(1, MAX_SIDE)
BACKBONE_CROP = count(MIN_BACKBONE_CROP, MAX_SIDE)


class NumberList:
    """An argparse type: a comma list of numbers of the type `number` (a Number), holding `holding` where given.
    meaning: what the list means, in --help. runtime.command_line writes a list back as one comma list."""
    comma_joined = True

    def __init__(self, number, holding=None, meaning=None):
        self.number, self.holding, self.meaning = number, holding, meaning
        self.__name__ = 'list'

    def describe(self):
        holding = f', one of them {self.holding:g}' if self.holding is not None else ''
        return f'{self.meaning or "a comma list"}: each {self.number.describe()}{holding}'

    def __call__(self, text):
        values = [self.number(value) for value in text.split(',')]
        if self.holding is not None and self.holding not in values:
            raise argparse.ArgumentTypeError(f'{text} does not hold {self.holding:g}: {self.describe()}')
        return values


def per_round(number):
    """An argparse type: one value for every round, or a comma list with one per round (the last one repeats)."""
    return NumberList(number, meaning='V, or V1,V2,... one per round (the last one repeats)')


class ScriptParser(argparse.ArgumentParser):
    """The parser of a script: its docstring as the description (kept as written), a refusal in one line (the
    script, the flag, the value and what works; exit status 2) instead of the usage block, and the range of each
    numeric flag in its help."""

    def __init__(self, description=None, **kwargs):
        kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        super().__init__(description=description, **kwargs)

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (--help lists the flags)\n')

    def format_help(self):
        for action in self._actions:
            describe = getattr(action.type, 'describe', None)
            if describe and describe() not in (action.help or ''):
                action.help = f'{action.help}; {describe()}' if action.help else describe()
        return super().format_help()
