"""How run_rounds.py runs its steps: each script in a subprocess as a user would run it, its output in
<work_dir>/logs/<step>.log, skipped when the script's completion record says the same settings and inputs already
produced its outputs, the network steps under the launcher (torchrun on several GPUs), and a Ctrl-C passed on once
to the step so that it saves what it has. Which steps a round runs is run_rounds.py's. A script is asked through
the ScriptStep it registers (utils/engine/steps.py): its command line, its completion, whether it runs a
network."""
import os
import subprocess
import sys
import time

from utils.engine.files import replace_link
from utils.engine.interrupts import INTERRUPTS, stop_if_interrupted
from utils.engine.layout import RunLayout
from utils.engine.steps import script_step

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where the scripts are, and run


def step_argv(script, settings):
    """A step's argv: its settings ({flag dest: value}) through the script's command line, which refuses a
    setting the script has no flag for."""
    return script_step(script).command_line(**settings)


class Runner:
    """Runs the scripts as a user would and records the wall time of each step."""

    def __init__(self, args):
        self.args = args
        self.run = RunLayout(args.work_dir)
        self.times = {}

    def common(self):
        """Settings of every step that runs a network or reads images: device, loader workers, precision."""
        return dict(cuda=self.args.cuda, workers=self.args.workers, amp=self.args.amp)

    def launcher(self):
        """The command prefix of the network steps: --launcher, torchrun with --nproc_per_node, or Python."""
        if self.args.launcher:
            return list(self.args.launcher)
        if self.args.nproc_per_node:
            return [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                    f'--nproc_per_node={self.args.nproc_per_node}']
        return [sys.executable]

    def generation(self):
        """Settings of the pseudo-mask steps: whether masks with no foreground at all end the run."""
        return dict(allow_empty=self.args.allow_empty)

    def training(self):
        """Settings of the training steps."""
        return dict(deterministic=self.args.deterministic)

    def scratch(self, init_model_path):
        """main.py's --from_scratch, passed on only when asked for and there are no initial weights."""
        return dict(from_scratch=self.args.from_scratch if not init_model_path else None)

    def step(self, name, script, settings):
        """Run `script` with `settings` ({flag dest: value}, made into its argv by step_argv), unless the script's
        completion record says that these flags and the same inputs have already produced its outputs."""
        step = script_step(script)
        flags = step.command_line(**settings) + (['--overwrite'] if self.args.overwrite else [])
        args = step.parse(flags)  # what the script will see
        if step.done(args):
            print(f'[skip] {name}: done with the same settings and inputs', flush=True)
            return
        starter = self.launcher() if step.runs_networks(args) else [sys.executable]
        cmd = starter + [os.path.join(PROJECT_ROOT, script)] + flags
        log_path = self.run.step_log(name)
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        print(f'[run] {name}: {" ".join(cmd)}\n      log: {log_path}', flush=True)
        env = dict(os.environ, **({'OMP_NUM_THREADS': str(self.args.threads), 'MKL_NUM_THREADS': str(self.args.threads)}
                                  if self.args.threads else {}))
        tic = time.time()
        replace_link(log_path)  # a log is a file of its own, never written through a link
        with open(log_path, 'w') as log:
            code = run_step_process(cmd, log, env)
        stop_if_interrupted(lambda signal_name: f'interrupted by {signal_name} during step "{name}", which saved what '
                            f'it had (see {log_path}); rerun run_rounds.py with the same flags to continue: finished '
                            'steps are skipped, training resumes from its checkpoint')
        if code:
            with open(log_path) as log:
                tail = ''.join(log.readlines()[-15:])
            raise SystemExit(f'{tail}\nstep "{name}" failed (exit status {code}; the end of {log_path} is above). '
                             'Fix the cause and rerun run_rounds.py: the finished steps are skipped')
        self.times[name] = round(time.time() - tic, 1)


def run_step_process(cmd, log, env):
    """Run one step and return its exit status. The step runs in its own session, so a Ctrl-C at the terminal
    reaches run_rounds.py only: a SIGTERM or SIGINT is passed on to the step once (it saves and exits), and
    run_rounds.py waits for it; a second signal stops both at once."""
    process = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    forwarded = False
    try:
        with INTERRUPTS.guard():
            while True:
                try:
                    return process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    signum = INTERRUPTS.pending()
                    if signum and not forwarded:
                        process.send_signal(signum)
                        forwarded = True
    finally:
        if process.poll() is None:  # run_rounds.py is stopping at once: so does the step
            process.kill()
            process.wait()
