"""How a script runs as a step of run_rounds.py (and of the demo and the benchmarks that drive it): each script
declares one ScriptStep, its parser, the one function that gives its completion (the same one its `main` uses)
and whether it runs a network, and registers it with register_step when it is imported. utils/step_runner.py asks
the entry, never the module: run_rounds.py imports the scripts it runs, so their entries are there."""
import argparse
from dataclasses import dataclass
from typing import Callable, Optional

from . import runtime
from .records import Completion


@dataclass(frozen=True)
class ScriptStep:
    """path: the script, from the project root ('trainLPG.py', 'utils/parseCOCO.py'). get_args_parser() -> its
    parser. completion(args) -> its Completion for these flags, or None where it cannot tell (never done).
    runs_networks(args): whether it runs a network, and so runs under run_rounds.py's launcher (torchrun)."""
    path: str
    get_args_parser: Callable[[], argparse.ArgumentParser]
    completion: Callable[[argparse.Namespace], Optional[Completion]]
    runs_networks: Callable[[argparse.Namespace], bool] = lambda args: False

    def command_line(self, **settings) -> list[str]:
        """The argv for {flag dest: value} (utils.engine.runtime.command_line)."""
        return [str(flag) for flag in runtime.command_line(self.get_args_parser(), **settings)]

    def parse(self, argv) -> argparse.Namespace:
        """The flags the script will see for argv."""
        return self.get_args_parser().parse_args(argv)

    def done(self, args) -> bool:
        """Whether its outputs for these flags were all made already from the same settings and inputs."""
        completion = self.completion(args)
        return completion is not None and completion.done()


SCRIPT_STEPS: dict[str, ScriptStep] = {}


def register_step(step: ScriptStep) -> ScriptStep:
    SCRIPT_STEPS[step.path] = step
    return step


def script_step(path: str) -> ScriptStep:
    if path not in SCRIPT_STEPS:
        raise KeyError(f'no step is registered for {path}: the script that runs it (run_rounds.py) imports it, '
                       'which registers its ScriptStep')
    return SCRIPT_STEPS[path]
