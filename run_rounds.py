r"""Run rounds 1..N of the LPG alternation on a VOC root and a COCO root.

    python run_rounds.py --voc_root_dir VOC2012 --coco_root_dir COCO --work_dir runs/lpg --rounds 3 \
        --voc_init_model_path PretrainedModel/vgg16_largefov_imagenet.pth \
        --coco_init_model_path PretrainedModel/vgg16_largefov_imagenet_61.pth

Each step runs the published script in a subprocess, its output in <work_dir>/logs/<step>.log, and is skipped
when the script's completion record says the same settings and inputs already produced its outputs, so an
interrupted run continues where it stopped (the training steps resume from their last checkpoint, generation
skips the masks already written).
Round r: train LPG-r on COCO-60 (reading the round r-1 COCO-60 backbone when r >= 2); VOC pseudo masks with
LPG-r (and the round r-1 VOC backbone); score them; train and evaluate the round-r VOC backbone; unless r is
the last round, COCO-60 pseudo masks and the round-r COCO-60 backbone that the next round reads.
Layout under --work_dir (utils/engine/layout.py, RunLayout): lpg/Round_r/LPG_Round<r>.pth,
pseudo_voc/<model_type>_Round<r>/, pseudo_coco/<model_type>_Round<r>/, backbone_voc/Round_r/,
backbone_coco/Round_r/, summary.json.
--compare_backbones also trains the VOC backbone on each baseline's masks and on the ground truth
(backbone_voc/<method>/, backbone_voc/ground_truth/); --uniform_ablation also trains each round >= 2 generator
with uniform probabilities in place of the backbone's (lpg_uniform/, pseudo_voc/<model_type>_Round<r>_uniform/).

On several GPUs every step that runs a network (trainLPG.py, genPseudoMasks.py with the generator, main.py,
test.py --type test/crf) runs under torchrun; parsing COCO, the baselines and the scoring run as they are:
    python run_rounds.py ... --nproc_per_node 8                      # one node, 8 GPUs
    python run_rounds.py ... --launcher "torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \
        --rdzv_endpoint FIRST_NODE:29500 --rdzv_id lpg"               # on every node, one shared --work_dir
"""
import argparse
import importlib
import os
import shlex
import subprocess
import sys
import time

import genPseudoMasks
import main as main_script
import test
import trainLPG
from datasets.errors import InputError, MissingFile
from datasets.files import replace_link, write_json
from datasets.voc import resolve_voc_root
from models.backbones import SCRATCH_INITS, backbone_names
from utils import parseCOCO
from utils.engine import layout, runtime
from utils.engine.interrupts import INTERRUPTS, stop_if_interrupted
from utils.engine.layout import RunLayout
from utils.engine.precision import AMP_CHOICES
from utils.engine.runtime import comma_list, run_script, str2bool, with_values
from utils.parseCOCO import instances_path

HERE = os.path.dirname(os.path.abspath(__file__))
GROUND_TRUTH = 'ground_truth'  # the backbone_voc/ folder of the fully supervised upper bound


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--voc_root_dir', required=True)
    parser.add_argument('--coco_root_dir', required=True)
    parser.add_argument('--work_dir', required=True)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--model_type', choices=backbone_names(), default='vgg16', help='the VOC backbone')
    parser.add_argument('--coco_model_type', choices=backbone_names(), default='vgg16',
                        help='the COCO-60 backbone that the round-2+ generators read: VGG16 in the release on both '
                        'tracks, so one LPG_Round2/3 serves the VGG16 and the ResNet-101 experiments')
    parser.add_argument('--voc_init_model_path', help='initial weights of the VOC backbones (every round)')
    parser.add_argument('--coco_init_model_path', help='initial weights of the COCO-60 backbones (every round)')
    parser.add_argument('--overwrite', action='store_true',
                        help='redo the steps whose outputs were made from other settings or inputs (passed on to '
                        'every step; a training run with the same inputs still resumes)')
    parser.add_argument('--from_scratch', nargs='?', const='pytorch', choices=SCRATCH_INITS,
                        help="train backbones without an --*_init_model_path from random weights, initialised as "
                        "main.py --from_scratch says (pytorch, the bare flag's, or kaiming); main.py refuses "
                        'otherwise')
    parser.add_argument('--compare_backbones', action='store_true',
                        help='also train and test the VOC backbone on each baseline\'s masks (backbone_voc/<method>/) '
                        'and on the ground truth SegmentationClassAug (backbone_voc/ground_truth/: the fully '
                        'supervised upper bound), with the rounds\' schedule, as the paper\'s table compares them')
    parser.add_argument('--uniform_ablation', action='store_true',
                        help='from round 2, also train each round\'s generator with trainLPG.py --seg_probs uniform '
                        '(the same start, data and iterations; lpg_uniform/) and make and score its VOC masks '
                        '(<model_type>_Round<R>_uniform/): the part of a round\'s gain that comes from reading the '
                        'previous backbone')
    parser.add_argument('--voc_split', default='train_aug', help='VOC training split (pseudo masks, backbone)')
    parser.add_argument('--val_split', default='val')
    parser.add_argument('--score_masks', type=str2bool, default=True,
                        help='score the VOC pseudo masks against SegmentationClassAug (needs it)')
    parser.add_argument('--baselines', type=comma_list, default=['box'],
                        help='pseudo-mask baselines to make and score beside LPG, a comma list of box, grabcut, crf '
                        '(default box; an empty string for none)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads of every step (OMP_NUM_THREADS): a fixed count keeps CPU results the same')
    parser.add_argument('--deterministic', action='store_true',
                        help='training steps use deterministic algorithms (torch.use_deterministic_algorithms)')
    # Scaled-down settings (the demo and the tests use these); unset means each script's own default.
    parser.add_argument('--lpg_iterations', type=per_round(int),
                        help='LPG iterations, one number or one per round (N1,N2,...; the last one repeats)')
    parser.add_argument('--lpg_batch_size', type=int)
    parser.add_argument('--lpg_crop_size', type=int)
    parser.add_argument('--lpg_lr', type=per_round(float), help='LPG lr, one number or one per round')
    parser.add_argument('--backbone_iterations', type=int)
    parser.add_argument('--backbone_batch_size', type=int)
    parser.add_argument('--backbone_crop_size', type=int)
    parser.add_argument('--backbone_lr', type=float)
    parser.add_argument('--backbone_warmup_iterations', type=int, help="main.py --warmup_iterations (default 0)")
    parser.add_argument('--voc_test_size', type=int)
    parser.add_argument('--coco_test_size', type=int)
    parser.add_argument('--eval_test_size', type=int, help='test.py --test_size (VGG16 padding, default 513)')
    parser.add_argument('--n_jobs', type=int, default=2)
    parser.add_argument('--cuda', type=str2bool, default=None)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--amp', choices=AMP_CHOICES, help="every network step's --amp (default: each script's, auto)")
    launch = parser.add_mutually_exclusive_group()
    launch.add_argument('--nproc_per_node', type=int,
                        help='run every network step under torchrun with N processes on this node (one per GPU)')
    launch.add_argument('--launcher', type=shlex.split,
                        help='the command that starts every network step, e.g. "torchrun --nproc_per_node 8" or a '
                        'multi-node torchrun with its rendezvous flags; the script and its flags follow it')
    return parser


def command_line(**settings):
    """This script's argv for {flag's dest: value} (utils.engine.runtime.command_line): how run_rounds.py and demo.py
    build its commands."""
    return runtime.command_line(get_args_parser(), **settings)


def per_round(kind):
    """Flag type: one value for every round, or a comma list with one per round (the last one repeats)."""
    def parse(text):
        try:
            return [kind(value) for value in text.split(',')]
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected V or V1,V2,..., got {text!r}') from None
    return parse


def for_round(values, r):
    return None if values is None else values[min(r, len(values)) - 1]


def runs_networks(script, flags):
    """Whether a step runs a network, and so runs under the launcher: the generator's pseudo masks (not the
    baselines), the trainings, and test.py's logits (not its scoring of masks)."""
    def value(name, default):
        return flags[flags.index(name) + 1] if name in flags else default
    if script == 'genPseudoMasks.py':
        return value('--method', 'lpg') == 'lpg'
    if script == 'test.py':
        return value('--type', 'test') in ('test', 'crf')
    return script in ('trainLPG.py', 'main.py')


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

    def training(self):
        """Settings of the training steps."""
        return dict(deterministic=self.args.deterministic)

    def scratch(self, init_model_path):
        """main.py's --from_scratch, passed on only when asked for and there are no initial weights."""
        return dict(from_scratch=self.args.from_scratch if not init_model_path else None)

    def step(self, name, script, flags):
        """Run `script flags`, unless the script's completion record says that these flags and the same
        inputs have already produced its outputs (its `step_done`)."""
        flags = [str(f) for f in flags] + (['--overwrite'] if self.args.overwrite else [])
        module = importlib.import_module(script[:-3].replace(os.sep, '.'))
        if module.step_done(module.get_args_parser().parse_args(flags)):
            print(f'[skip] {name}: done with the same settings and inputs', flush=True)
            return
        starter = self.launcher() if runs_networks(script, flags) else [sys.executable]
        cmd = starter + [os.path.join(HERE, script)] + flags
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


def train_lpg(runner, run, r, seg_probs='backbone'):
    """Train the round-r generator; a round >= 2 starts from the round r-1 generator of its own kind and reads the
    round r-1 COCO-60 backbone (or, with seg_probs 'uniform', uniform probabilities in its place)."""
    a = runner.args
    iterations = for_round(a.lpg_iterations, r)
    # Snapshots about every tenth of the run, so that a killed round loses little (the script's default
    # is every 5000 of 100k iterations).
    settings = dict(coco_root_dir=a.coco_root_dir, round=r, model_save_path=run.lpg_root(seg_probs), resume=True,
                    batch_size=a.lpg_batch_size, crop_size=a.lpg_crop_size, lr=for_round(a.lpg_lr, r),
                    num_max_iterations=iterations,
                    num_save_model=None if iterations is None else max(1, iterations // 10))
    if r >= 2:
        # Round 1 reads no probabilities: both kinds of round 2 start from the same round-1 generator.
        settings.update(init_lpg_model_path=run.lpg(r - 1, seg_probs if r > 2 else 'backbone'))
        settings.update(dict(seg_probs='uniform') if seg_probs == 'uniform' else
                        dict(init_seg_model_path=run.backbone('coco', a.coco_model_type, r - 1),
                             seg_model_type=a.coco_model_type))
    runner.step(f'round {r}: train LPG{ablation_suffix(seg_probs)}', 'trainLPG.py',
                trainLPG.command_line(**settings, **runner.training(), **runner.common()))


def ablation_suffix(seg_probs):
    return '' if seg_probs == 'backbone' else f', {seg_probs} probabilities'


def voc_pseudo_masks(runner, run, r, seg_probs='backbone'):
    """The round-r generator's VOC pseudo masks, scored when --score_masks. Returns (folder, score file or None)."""
    a = runner.args
    settings = dict(dataset='voc', round=r, model_path_test=run.lpg(r, seg_probs), voc_root_dir=a.voc_root_dir,
                    voc_proposals_dir=run.pseudo_root('voc'), model_type=a.model_type, voc_split=a.voc_split,
                    voc_test_size=a.voc_test_size)
    if r >= 2:
        settings.update(dict(seg_probs='uniform') if seg_probs == 'uniform' else
                        dict(init_voc_model_path=run.backbone('voc', a.model_type, r - 1)))
    suffix = ablation_suffix(seg_probs)
    runner.step(f'round {r}: VOC pseudo masks{suffix}', 'genPseudoMasks.py',
                genPseudoMasks.command_line(**settings, **runner.common()))
    masks = run.pseudo_masks('voc', 'lpg', a.model_type, r, seg_probs)
    if not a.score_masks:
        return masks, None
    score_step(runner, run, f'round {r}: score VOC pseudo masks{suffix}', masks)
    return masks, run.mask_scores('voc', 'lpg', a.model_type, r, seg_probs)


def score_step(runner, run, name, masks):
    """test.py --type masks: a set of VOC pseudo masks against SegmentationClassAug."""
    a = runner.args
    runner.step(name, 'test.py', test.command_line(type='masks', root_path=a.voc_root_dir, pred_dir=[masks],
                                                   split=a.voc_split, save_path=run.pseudo_root('voc')))


def voc_backbone(runner, run, key, labels, title):
    """Train the VOC backbone `key` (a round number, or the name of its masks) on the masks in `labels`, then test
    it on the val split without and with CRF. Returns the score file (both results)."""
    a = runner.args
    runner.step(f'{title}: train VOC backbone', 'main.py', main_script.command_line(
        dataset='voc', root_path=a.voc_root_dir, label_path_name=labels, model_type=a.model_type,
        save_path=run.backbone_dir('voc', key), split=a.voc_split, resume=True, init_model_path=a.voc_init_model_path,
        **backbone_schedule(a), **runner.scratch(a.voc_init_model_path), **runner.training(), **runner.common()))
    eval_dir = run.backbone_eval('voc', a.model_type, key, a.val_split)
    runner.step(f'{title}: test VOC backbone + CRF', 'test.py', test.command_line(
        type='crf', root_path=a.voc_root_dir, model_type=a.model_type,
        model_path=run.backbone('voc', a.model_type, key), split=a.val_split, save_path=eval_dir, n_jobs=a.n_jobs,
        test_size=a.eval_test_size, cuda=a.cuda, amp=a.amp))
    return layout.scores_file(eval_dir, 'crf')


def backbone_schedule(a):
    """The backbone settings that run_rounds.py sets (unset ones keep main.py's defaults)."""
    return dict(num_iterations=a.backbone_iterations, batch_size=a.backbone_batch_size,
                crop_size=a.backbone_crop_size, lr=a.backbone_lr, warmup_iterations=a.backbone_warmup_iterations)


def run_step_process(cmd, log, env):
    """Run one step and return its exit status. The step runs in its own session, so a Ctrl-C at the terminal
    reaches run_rounds.py only: a SIGTERM or SIGINT is passed on to the step once (it saves and exits), and
    run_rounds.py waits for it; a second signal stops both at once."""
    process = subprocess.Popen(cmd, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
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


def run_round(runner, r, run, last_round):
    a = runner.args
    cmt = a.coco_model_type
    train_lpg(runner, run, r)
    voc_masks, score_path = voc_pseudo_masks(runner, run, r)
    result = {} if score_path is None else {'pseudo_mask_scores': score_path}
    if r >= 2 and a.uniform_ablation:
        train_lpg(runner, run, r, 'uniform')
        _, uniform_scores = voc_pseudo_masks(runner, run, r, 'uniform')
        if uniform_scores:
            result['uniform_pseudo_mask_scores'] = uniform_scores
    result['backbone_scores'] = voc_backbone(runner, run, r, voc_masks, f'round {r}')

    if not last_round:
        runner.step(f'round {r}: COCO-60 pseudo masks', 'genPseudoMasks.py', genPseudoMasks.command_line(
            dataset='coco', round=r, model_path_test=run.lpg(r), coco_root_dir=a.coco_root_dir,
            coco_proposals_dir=run.pseudo_root('coco'), model_type=cmt, coco_test_size=a.coco_test_size,
            init_coco_model_path=run.backbone('coco', cmt, r - 1) if r >= 2 else None, **runner.common()))
        runner.step(f'round {r}: train COCO-60 backbone', 'main.py', main_script.command_line(
            dataset='coco', root_path=a.coco_root_dir, label_path_name=run.pseudo_masks('coco', 'lpg', cmt, r),
            model_type=cmt, save_path=run.backbone_dir('coco', r), resume=True, init_model_path=a.coco_init_model_path,
            **backbone_schedule(a), **runner.scratch(a.coco_init_model_path), **runner.training(),
            **runner.common()))
    return result


def run_baseline(runner, run, method):
    """A baseline's VOC pseudo masks (box, grabcut, crf): what LPG has to beat. Returns its score file."""
    a = runner.args
    runner.step(f'baseline: {method} masks', 'genPseudoMasks.py', genPseudoMasks.command_line(
        dataset='voc', method=method, voc_root_dir=a.voc_root_dir, voc_proposals_dir=run.pseudo_root('voc'),
        voc_split=a.voc_split, n_jobs=a.n_jobs, voc_test_size=a.voc_test_size, **runner.common()))
    if a.score_masks:
        score_step(runner, run, f'baseline: score {method} masks', run.pseudo_masks('voc', method, a.model_type, None))
    return run.mask_scores('voc', method, a.model_type, None)


def check_initialisations(args):
    """Refuse before hours of LPG training, not at the first backbone, when no initial weights are given."""
    missing = ['--voc_init_model_path'] if not args.voc_init_model_path else []
    if args.rounds > 1 and not args.coco_init_model_path:
        missing.append('--coco_init_model_path')
    if missing and not args.from_scratch:
        raise InputError(f'run_rounds.py needs {" and ".join(missing)} (ImageNet initialisations made by '
                         'utils/imagenet_init.py); pass --from_scratch to train those backbones from random weights')


def absolute_inputs(args):
    """A copy of args whose input paths are absolute: the steps run in the project folder, and paths given relative
    to where run_rounds.py was started must still name the same files there."""
    names = ('voc_root_dir', 'coco_root_dir', 'voc_init_model_path', 'coco_init_model_path')
    return with_values(args, **{name: os.path.abspath(getattr(args, name)) for name in names if getattr(args, name)})


def main(args):
    check_initialisations(args)
    args = absolute_inputs(args)
    resolve_voc_root(args.voc_root_dir)  # bad roots are named now, not after the first steps
    if not os.path.isfile(instances_path(args.coco_root_dir)):
        raise MissingFile(f'COCO annotation file not found: {instances_path(args.coco_root_dir)}')
    run = RunLayout(args.work_dir)
    os.makedirs(run.work_dir, exist_ok=True)
    runner = Runner(args)
    runner.step('parse COCO', os.path.join('utils', 'parseCOCO.py'),
                parseCOCO.command_line(dataRoot=args.coco_root_dir))
    summary = {'rounds': {}}
    summary['baseline_scores'] = {method: run_baseline(runner, run, method) for method in args.baselines}
    if args.compare_backbones:
        # The paper's comparison: the same backbone trained on each baseline's masks and on the ground truth.
        summary['other_backbones'] = {
            method: voc_backbone(runner, run, method, run.pseudo_masks('voc', method, args.model_type, None),
                                 f'baseline {method}') for method in args.baselines}
        summary['other_backbones'][GROUND_TRUTH] = voc_backbone(runner, run, GROUND_TRUTH, 'SegmentationClassAug',
                                                                'ground truth')
    for r in range(1, args.rounds + 1):
        summary['rounds'][r] = run_round(runner, r, run, last_round=r == args.rounds)
    summary['step_seconds'] = runner.times
    write_json(run.summary, summary)
    return summary


if __name__ == '__main__':
    run_script(main, get_args_parser())
