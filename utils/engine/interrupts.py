"""SIGTERM (a scheduler preempting the job) and SIGINT (Ctrl-C): stop at a safe point, keep what was done.

`run_script` installs the handlers for the life of a script. Outside a guarded section a signal stops the
script at once, with one line and the shell's status (130 for SIGINT, 143 for SIGTERM), never a traceback;
what was written before is intact, since every output is written atomically. Inside a guarded section (a
training loop, a generation or test loop) the signal is only noted: the loop finishes the step or the images in
flight, saves what it has, prints how to continue and exits with the same status (`stop_if_interrupted`). A
second signal stops at once.
"""
import signal
import sys

import torch

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupts:
    def __init__(self):
        self.received = None  # the signal number noted inside a guarded section
        self.guarded = 0
        self.previous = {}

    def install(self):
        """Handle SIGTERM and SIGINT (only the main thread can; elsewhere Python's defaults stay)."""
        try:
            self.previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        except ValueError:
            self.previous = {}

    def uninstall(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous, self.received, self.guarded = {}, None, 0

    def _handle(self, signum, frame):
        if self.guarded and self.received is None:
            self.received = signum
            print(f'\n{signal.Signals(signum).name} received: finishing the work in flight, then stopping (send it '
                  'again to stop at once)', file=sys.stderr, flush=True)
            return
        print(f'\nstopped by {signal.Signals(signum).name} (the files written so far are complete)', file=sys.stderr,
              flush=True)
        raise SystemExit(exit_status(signum))

    def guard(self):
        """A context in which a signal is noted instead of stopping the script."""
        return _Guard(self)

    def enter(self):
        """Begin a guarded section that spans calls (a training run: RunOutputs); leave() ends it."""
        self.guarded += 1

    def leave(self):
        self.guarded = max(0, self.guarded - 1)

    def pending(self, ctx=None):
        """The signal noted so far (None if none), agreed by every process: each stops at the same step."""
        if ctx is None or not ctx.distributed:
            return self.received
        anyone = int(ctx.all_reduce_sum(torch.tensor([1 if self.received else 0], dtype=torch.int64)))
        # torchrun passes a signal on to every process; one that saw none stops as if preempted.
        return self.received or (signal.SIGTERM if anyone else None)


class _Guard:
    def __init__(self, interrupts):
        self.interrupts = interrupts

    def __enter__(self):
        self.interrupts.enter()
        return self.interrupts

    def __exit__(self, *exc):
        self.interrupts.leave()
        return False


def exit_status(signum):
    """The status a shell reports for a job ended by the signal: 128 + its number."""
    return 128 + signum


INTERRUPTS = Interrupts()


def stop_if_interrupted(message, ctx=None):
    """Inside a guarded loop, at a safe point (after a step, between images): if a signal was noted, print
    `message(signal name)` (what was kept and how to continue) and exit with the shell's status for it."""
    stop_for(INTERRUPTS.pending(ctx), message, ctx)


def stop_for(signum, message, ctx=None):
    """stop_if_interrupted for a signal already agreed on (INTERRUPTS.pending); nothing when signum is None."""
    if signum is None:
        return
    if ctx is None or ctx.is_main:
        print(message(signal.Signals(signum).name), file=sys.stderr, flush=True)
    raise SystemExit(exit_status(signum))
