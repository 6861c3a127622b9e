"""Boxes to pseudo masks, in one home: every method genPseudoMasks.py can run, the rules that compose the masks
of an image's entries (a class, or with --instances a box) into one label map, and what a method writes.

- generator.py: the learned generator (LPG), a batch of images at a time (generate_lpg), and the release's
  one-class-at-a-time loop, the reference the batched one is checked and timed against;
- baselines.py: filled boxes, GrabCut and DenseCRF from the boxes, one image per job (baseline_image);
- sam.py: Segment Anything prompted with the boxes (its package is optional, imported only when it runs);
- methods.py: the registry of the methods by name (METHODS, MethodSpec), which the scripts read;
- compose.py: the overlap rules (first, confidence, smaller);
- outputs.py: the palette PNGs, the per-box RLE of --instances, and the files of a pseudo-mask folder.

The names below are this package's interface; the scripts, benchmarks and tests import them from here.
"""
from .baselines import (
                        BOX_CRF_INSIDE,
                        BOX_CRF_PARAMS,
                        GRABCUT_ITERATIONS,
                        baseline_image,
                        box_baseline,
                        box_foreground,
                        crf_baseline,
                        crf_foreground,
                        generate_baseline,
                        grabcut_baseline,
                        grabcut_foreground,
)
from .compose import OVERLAP_RULES, compose_entries, compose_label, covering_box_area
from .generator import batch_labels, foregrounds_or_failures, generate_labels_per_class, generate_lpg, load_generator
from .methods import LPG, METHODS, GenerationJob, MethodSpec, baseline_methods, get_method, mask_dir, register_method
from .outputs import (
                        INSTANCES,
                        any_foreground,
                        mask_files,
                        nothing_learned,
                        output_files,
                        write_outputs,
)
from .sam import (
                        MISSING_PACKAGE,
                        OFFICIAL_CHECKPOINTS,
                        SAM_CHECKPOINTS,
                        SAM_MODELS,
                        SAM_OUTPUTS,
                        SamArchitecture,
                        SamImage,
                        build_sam,
                        check_sam_inputs,
                        generate_sam,
                        load_sam,
                        sam_foregrounds,
                        segment_anything,
)

__all__ = [
    'BOX_CRF_INSIDE', 'BOX_CRF_PARAMS', 'GRABCUT_ITERATIONS', 'INSTANCES', 'MISSING_PACKAGE', 'OFFICIAL_CHECKPOINTS',
    'OVERLAP_RULES', 'SAM_CHECKPOINTS', 'SAM_MODELS', 'SAM_OUTPUTS', 'SamArchitecture', 'SamImage', 'baseline_image',
    'batch_labels', 'box_foreground', 'build_sam', 'check_sam_inputs', 'compose_entries', 'compose_label',
    'covering_box_area', 'crf_foreground', 'foregrounds_or_failures', 'generate_labels_per_class', 'generate_lpg',
    'generate_sam', 'grabcut_foreground', 'load_generator', 'load_sam', 'mask_files', 'output_files',
    'sam_foregrounds', 'segment_anything', 'write_outputs', 'box_baseline', 'crf_baseline', 'generate_baseline',
    'grabcut_baseline', 'LPG', 'METHODS', 'GenerationJob', 'MethodSpec', 'baseline_methods', 'get_method', 'mask_dir',
    'register_method', 'any_foreground', 'nothing_learned',
]
