"""What a pseudo-mask folder holds and how a method writes into it: a palette PNG per image and, with
--instances, the RLE of each box's mask (merged into pseudo_masks.json at the end)."""
import os

import numpy as np

from datasets.custom import rle_annotation
from datasets.io import read_label, save_palette_png
from utils.engine.files import write_json

# --instances: one json per image of per-box masks (RLE), merged into pseudo_masks.json at the end.
INSTANCES = 'instances'


def mask_files(folder):
    """The PNGs of a pseudo-mask folder."""
    return [os.path.join(folder, name) for name in os.listdir(folder) if name.endswith('.png')] \
        if os.path.isdir(folder) else []


def output_files(folder):
    """Everything a generation writes in its folder: the PNGs, and for --dataset custom the class table, the
    COCO-format json and the per-image instance masks."""
    extra = [os.path.join(folder, name) for name in ('classes.json', 'pseudo_masks.json')]
    instances = os.path.join(folder, INSTANCES)
    extra += [os.path.join(instances, name) for name in os.listdir(instances)] if os.path.isdir(instances) else []
    return mask_files(folder) + extra


def any_foreground(folder):
    """Whether any mask of a pseudo-mask folder labels a pixel with a class (not background, not void). Stops at
    the first such mask, so a folder of working masks costs a file or two; an empty one is read in full."""
    return any(np.any((label > 0) & (label < 255)) for label in map(read_label, sorted(mask_files(folder))))


def nothing_learned(folder, method, images):
    """The one line that stops a run whose learned method (its entry's `learned`) labelled no foreground pixel in
    any box, or None: a method that learned nothing cannot be repaired by a later step (a backbone trained on empty
    masks predicts background everywhere)."""
    if not images or any_foreground(folder):
        return None
    return (f'{folder}: the {method} masks of all {images} images are empty (no foreground pixel inside any box): '
            'the generator learned nothing, so nothing downstream could learn from them; check its training '
            '(loss_log.csv, and docs/small_budgets.md), or pass --allow_empty to keep them')


def write_outputs(write, out_dir, image_id, label, instance_masks=None):
    """The palette PNG, and with --instances the RLE of each box's mask."""
    write(save_palette_png, os.path.join(out_dir, f'{image_id}.png'), label)
    if instance_masks is not None:
        write(write_json, os.path.join(out_dir, INSTANCES, f'{image_id}.json'),
              [rle_annotation(0, None, None, mask) for mask in instance_masks])


def interrupted_message(signal_name):
    """What a generation stopped by SIGTERM / SIGINT says: every method finishes the images in flight first."""
    return (f'interrupted by {signal_name}: the masks written so far are complete and kept; rerun the same command to '
            'make the others (the written ones are skipped)')
