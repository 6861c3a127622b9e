"""The pseudo-mask methods by name, one entry each, as models/backbones.py holds the backbones and
datasets/registry.py the datasets. genPseudoMasks.py (--method), run_rounds.py (--baselines, and the steps it
runs), the demo and the real-photo benchmark read this registry: no other file spells a method's name.

An entry says what the method is called in reports, which flags are its own, whether it runs a network (then it
runs on the device, and under the launcher of run_rounds.py), what it loads and checks before any output is
written, what its completion record names, where its masks go and how it makes them. To add a method, write its
foreground function (as baselines.py does) or its generate function, and register a MethodSpec here with
register_method; tests/test_methods.py registers a toy one and runs it through genPseudoMasks.py, run_rounds.py
--baselines and the scores.
"""
import os
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, NamedTuple, Optional

from utils.engine.errors import FlagError
from utils.engine.registry import Registry

from .baselines import box_baseline, crf_baseline, generate_baseline, grabcut_baseline
from .generator import generate_lpg, load_generator
from .sam import OFFICIAL_CHECKPOINTS, add_sam_args, check_sam_inputs, generate_sam, load_sam


class GenerationJob(NamedTuple):
    """What a method's `generate` gets: genPseudoMasks.py's flags, the process (its device, whether it is the main
    one), the precision, what the method's `load` returned (None without one), this process's images still to do
    (datasets.boxes.BoxItem), the output folder, the overlap rule and the dataset's test size."""
    args: Any
    ctx: Any
    precision: Any
    networks: Any
    items: list
    out_dir: str
    rule: str
    test_size: int


@dataclass(frozen=True)
class MethodSpec:
    """One pseudo-mask method.

    A method without a network gives `foreground(image_bgr uint8, entry_boxes)` -> ((K, H, W) bool foreground of
    each entry, (K, H, W) float probabilities or None), run an image per job (baselines.generate_baseline). Any
    other gives generate(job: GenerationJob), which makes the masks of job.items in job.out_dir and returns
    ([(image_id, reason) of the images that failed], how many of those written carry an EXIF orientation tag).
    The optional hooks:
    add_args(parser) adds its own flags (their dests in `flags`, those it cannot run without in `required`, the
    file paths among them in `files`); check(args, backbone_path) refuses a combination of flags with a
    FlagError; check_inputs(args, what) checks its files before any work; load(args, precision, dataset,
    dataset_flags) loads its networks before the output folder is claimed; inputs(args, backbone_path) gives the
    {name: path} its completion record holds; folder_name(model_type, round_, seg_probs) names its folder."""
    name: str
    title: str  # in reports, tables and figures
    help: str  # what --method NAME does
    foreground: Optional[Callable] = None
    generate: Optional[Callable[[GenerationJob], tuple]] = None
    overlap: str = 'smaller'  # the overlap rule unless --overlap says otherwise
    probabilities: bool = False  # gives foreground probabilities: it takes --overlap confidence
    learned: bool = False  # no foreground pixel in any box means it learned nothing: the run ends with an error
    runs_network: bool = False  # runs on the device, under run_rounds.py's launcher
    generator: bool = False  # the round's generator: --round, --model_path_test, --seg_probs and the round R-1
    # backbone apply, and the test size pads to the sides it reads
    baseline: bool = True  # compared beside the generator: run_rounds.py --baselines, the demo, the benchmark
    max_side: Optional[str] = None  # None: honours --max_side; otherwise why it cannot
    flags: tuple = ()
    required: tuple = ()
    files: tuple = ()
    missing: str = ''  # what a report says when a required flag is not given
    add_args: Optional[Callable] = None
    check: Optional[Callable] = None
    check_inputs: Optional[Callable] = None
    load: Optional[Callable] = None
    inputs: Optional[Callable] = None
    folder_name: Optional[Callable] = None

    def __post_init__(self):
        if (self.foreground is None) == (self.generate is None):
            raise ValueError(f'pseudo-mask method {self.name!r}: give foreground or generate, not both')
        if self.foreground is not None:
            object.__setattr__(self, 'generate', partial(generate_baseline, self.foreground))

    def folder(self, proposals_dir, model_type=None, round_=None, overlap=None, seg_probs='backbone'):
        """Where its masks go under proposals_dir: its folder name, `_<rule>` appended for an overlap rule other
        than its own."""
        name = self.folder_name(model_type, round_, seg_probs) if self.folder_name else self.name
        return os.path.join(proposals_dir, name + (f'_{overlap}' if overlap and overlap != self.overlap else ''))

    def settings(self, args):
        """Its own flags' values in `args` (of a script that added them), to pass on to genPseudoMasks.py."""
        return {dest: getattr(args, dest, None) for dest in self.flags}

    def available(self, args):
        """Whether `args` gives every flag it cannot run without."""
        return all(getattr(args, dest, None) for dest in self.required)


# An unknown name is a flag's value that cannot work (--method, run_rounds.py --baselines).
METHODS = Registry('pseudo-mask method', 'pseudo-mask method', unknown=FlagError)


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method to --method's choices and to the baselines. Returns the spec."""
    return METHODS.register(spec)


def get_method(name: str) -> MethodSpec:
    return METHODS.entry(name)


def baseline_methods() -> list[MethodSpec]:
    """The methods compared beside the generator, in registration order."""
    return [spec for spec in METHODS.values() if spec.baseline]


def default_baselines() -> list[str]:
    """The baselines compared unless told otherwise: those that need no flag (a file) of their own."""
    return [spec.name for spec in baseline_methods() if not spec.required]


def chosen_baselines(names, args) -> list[MethodSpec]:
    """The baselines `names` (a list of names), and each baseline that needs flags of its own when `args` gives
    them (sam with --sam_checkpoint)."""
    chosen = [get_method(name) for name in names]
    return chosen + [spec for spec in baseline_methods() if spec.required and spec.available(args)
                     and spec not in chosen]


def baseline_files() -> list[str]:
    """The dests of the baselines' own file flags, to be made absolute by a script whose steps run elsewhere."""
    return [dest for spec in baseline_methods() for dest in spec.files]


def name_list(specs) -> str:
    """'a, b and c'."""
    found = [spec.name for spec in specs]
    return ', '.join(found[:-1]) + f' and {found[-1]}' if len(found) > 1 else ''.join(found)


def add_method_args(parser, specs=None):
    """The own flags of every method (or of `specs`)."""
    for spec in specs if specs is not None else METHODS.values():
        if spec.add_args:
            spec.add_args(parser)


def mask_dir(proposals_dir, method, model_type=None, round_=None, overlap=None, seg_probs='backbone'):
    """The folder of a method's masks, by its name (the scripts' --method)."""
    return get_method(method).folder(proposals_dir, model_type, round_, overlap, seg_probs)


# The learned generator.

def check_generator_flags(args, backbone_path):
    """The generator's checkpoint and, from round 2 on, the backbone it reads are given."""
    if not args.model_path_test:
        raise FlagError(f'--model_path_test (the LPG checkpoint) is required with --method {args.method}')
    if args.round >= 2 and args.seg_probs != 'uniform' and not backbone_path:
        raise FlagError(f'--round {args.round} reads the round {args.round - 1} backbone: '
                        f'pass --init_{args.dataset}_model_path')


def load_lpg(args, precision, dataset, flags):
    return load_generator(args.model_path_test, args.round, precision, args.seg_probs, flags.backbone_path,
                          args.model_type, len(dataset.class_names(flags.source)))


def lpg_job(job):
    lpg, backbone = job.networks
    a = job.args
    return generate_lpg(lpg, backbone, job.items, job.out_dir, job.ctx.device, job.precision, test_size=job.test_size,
                        max_side=a.max_side, rule=job.rule, pair_batch=a.batch_size, image_batch=a.image_batch_size,
                        workers=a.workers, writer_threads=a.writer_threads, per_box=a.instances,
                        progress=job.ctx.is_main)


LPG = register_method(MethodSpec(
    name='lpg', title='LPG', help='the learned generator', generate=lpg_job, overlap='first', probabilities=True,
    learned=True, runs_network=True, generator=True, baseline=False, check=check_generator_flags, load=load_lpg,
    inputs=lambda args, backbone_path: dict(lpg=args.model_path_test,
                                            backbone=backbone_path if args.round >= 2 else None),
    folder_name=lambda model_type, round_, seg_probs: f'{model_type}_Round{round_}'
    + ('_uniform' if seg_probs == 'uniform' else '')))

# The baselines that need no training, an image per job on the CPU.

BOX = register_method(MethodSpec(name='box', title='filled boxes', help='filled boxes', foreground=box_baseline))
register_method(MethodSpec(name='grabcut', title='GrabCut', help='OpenCV GrabCut from each box',
                           foreground=grabcut_baseline))
register_method(MethodSpec(name='crf', title='DenseCRF', help='DenseCRF on a unary built from the boxes',
                           foreground=crf_baseline, probabilities=True))

# Segment Anything prompted with the boxes.


def sam_job(job):
    a = job.args
    return generate_sam(job.networks, job.items, job.out_dir, job.precision, job.rule, a.sam_output, a.instances,
                        a.workers, a.writer_threads, progress=job.ctx.is_main)


register_method(MethodSpec(
    name='sam', title='SAM (box prompts)',
    help='Segment Anything prompted with each box; needs the segment-anything package and --sam_checkpoint',
    generate=sam_job, probabilities=True, learned=True, runs_network=True,
    max_side='SAM reads every image at 1024 on its longer side whatever its size (its memory grows with the image '
    'only through the masks, one image-sized mask per box)',
    flags=('sam_checkpoint', 'sam_model', 'sam_output'), required=('sam_checkpoint',), files=('sam_checkpoint',),
    missing='Segment Anything baseline: not run. To add SAM prompted with the boxes, pass --sam_checkpoint with '
    f"one of Meta's segment-anything checkpoints: {OFFICIAL_CHECKPOINTS}; nothing is downloaded",
    add_args=add_sam_args, check_inputs=lambda args, what: check_sam_inputs(args.sam_checkpoint, what),
    load=lambda args, precision, dataset, flags: load_sam(args.sam_model, args.sam_checkpoint, precision),
    inputs=lambda args, backbone_path: dict(sam=args.sam_checkpoint)))
