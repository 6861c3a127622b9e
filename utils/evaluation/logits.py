"""A segmentation backbone's logits over a test split, with test-time scales and flips, saved per image.

Each image's logits go to <logits_dir>/<image_id>.npz (float32) with the network input size they cover and the
image's size; probabilities() reads them back at the input size.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.boxes import collate_boxes
from datasets.segmentation import TestImageDataset
from datasets.validate import UnreadableImage
from utils.engine.files import BackgroundWriter, atomic_open
from utils.engine.interrupts import INTERRUPTS, stop_if_interrupted


def save_logits(path, logits, input_size, image_size):
    with atomic_open(path) as handle:
        np.savez(handle, logits=logits, input_size=np.array(input_size), image_size=np.array(image_size))


def augmented_logits(model, images, scales=(1.0,), flip=False):
    """Test-time augmentation: the logits of the images resized by each scale (bilinear), and of their mirror
    images with flip, brought to the logit size of scale 1 (bilinear) and averaged. scales must hold 1. With
    scales (1,) and no flip: the model's logits, the release's single-scale test."""
    outputs = []
    for scale in scales:
        scaled = images if scale == 1 else F.interpolate(images, scale_factor=scale, mode='bilinear',
                                                         align_corners=False)
        outputs.append(model(scaled).float())
        if flip:
            outputs.append(model(scaled.flip(-1)).float().flip(-1))
    size = outputs[list(scales).index(1) * (2 if flip else 1)].shape[-2:]
    if len(outputs) == 1:
        return outputs[0]
    resized = [out if out.shape[-2:] == size else F.interpolate(out, size=size, mode='bilinear', align_corners=False)
               for out in outputs]
    return torch.stack(resized).mean(0)


@torch.no_grad()
def compute_logits(model, items, logits_dir, pad_to, precision, batch_size, workers, writer_threads, progress=True,
                   scales=(1.0,), flip=False):
    """Raw logits of the (image_id, image_path) items whose .npz is not yet in logits_dir (float32, with the
    network input size they cover and the image size), averaged over test-time scales and flips when asked
    (augmented_logits). Items may carry a third entry, the image's ground-truth label: the image is then read in
    its frame. Images of one input size are batched (all of them when padded to pad_to); loader workers read and
    pad, writer threads save. Returns the (image_id, reason) of the images that could not be read, and how many
    of those read carry an EXIF orientation tag."""
    todo = [item for item in items if not os.path.exists(os.path.join(logits_dir, f'{item.image_id}.npz'))]
    if not todo:
        return [], 0
    loader = DataLoader(TestImageDataset(todo, pad_to), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate_boxes, pin_memory=precision.device.type == 'cuda')
    failed, oriented = [], 0
    # A SIGTERM / SIGINT ends the loop after the batch in flight; the writer finishes its files on the way out.
    with INTERRUPTS.guard(), BackgroundWriter(writer_threads) as writer:
        for samples in tqdm(loader, desc='logits', unit='batch', disable=not progress):
            if INTERRUPTS.pending():
                break
            by_size = {}
            for sample in samples:
                if isinstance(sample, UnreadableImage):
                    failed.append(tuple(sample))
                else:
                    oriented += sample.orientation != 1
                    by_size.setdefault(tuple(sample.image.shape[-2:]), []).append(sample)
            for size, group in by_size.items():
                images = precision.prepare_input(torch.stack([sample.image for sample in group]))
                with precision.autocast():
                    logits = augmented_logits(model, images, scales, flip)
                for sample, image_logits in zip(group, logits.float().cpu().numpy()):
                    writer.submit(save_logits, os.path.join(logits_dir, f'{sample.image_id}.npz'), image_logits,
                                  size, sample.image_size)
    stop_if_interrupted(lambda name: f'interrupted by {name}: the logits written so far are complete and kept; rerun '
                        'the same command to compute the others and score (the written ones are skipped)')
    return failed, oriented



def probabilities(logits_path):
    """Softmax of the logits resized (bilinear, align_corners=True) to the network input they cover
    (the padded input for backbones tested padded), and the (height, width) of the image."""
    with np.load(logits_path) as entry:
        logits = torch.from_numpy(entry['logits'])[None]
        input_size = tuple(int(side) for side in entry['input_size'])
        image_size = tuple(int(side) for side in entry['image_size'])
    logits = F.interpolate(logits, size=input_size, mode='bilinear', align_corners=True)
    return torch.softmax(logits[0], dim=0).numpy(), image_size

