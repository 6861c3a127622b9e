"""What a pseudo-mask folder holds and how a method writes into it: a palette PNG per image and, with
--instances, the RLE of each box's mask (merged into pseudo_masks.json at the end)."""
import os

from datasets.custom import rle_annotation
from datasets.files import write_json
from datasets.io import save_palette_png

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
