"""The learned generator's masks: a batch of images at a time (generate_lpg; the generator's batched forwards are
models.lpg.generate_foregrounds), and the release's one-class-at-a-time loop (generate_labels_per_class), the
reference the batched one is checked and timed against.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.boxes import BoxImageDataset, collate_boxes, restore_size
from datasets.validate import UnreadableImage
from models.backbones import build_backbone
from models.lpg import LPGNet, UniformProbabilities, backbone_probs, generate_foregrounds, lpg_in_channels, lpg_input
from utils.engine.checkpoint import load_weights
from utils.engine.files import BackgroundWriter
from utils.engine.interrupts import INTERRUPTS, stop_if_interrupted

from .compose import compose_entries, compose_label
from .outputs import interrupted_message, write_outputs


def load_generator(lpg_path, round_, precision, seg_probs='backbone', backbone_path=None, model_type='vgg16',
                   num_classes=21):
    """The round's LPG from lpg_path and, from round 2 on, what it reads: the round R-1 backbone (model_type with
    num_classes outputs, from backbone_path) or, with seg_probs 'uniform', uniform probabilities. Returns
    (lpg, backbone or None), on the precision's device, in eval mode."""
    in_channels = lpg_in_channels(round_)
    lpg = load_weights(LPGNet(in_channels=in_channels), lpg_path, what=f'LPGNet(in_channels={in_channels})')
    lpg = precision.prepare_model(lpg).eval()
    if round_ < 2:
        return lpg, None
    if seg_probs == 'uniform':
        return lpg, UniformProbabilities(num_classes)
    backbone = build_backbone(model_type, num_classes)
    load_weights(backbone, backbone_path, what=f'{model_type} backbone with {num_classes} classes')
    return lpg, precision.prepare_model(backbone).eval()


@torch.no_grad()
def generate_labels_per_class(lpg, sample, device, backbone=None):
    """The release's order of work, kept as the reference the batched path is checked and timed against:
    one backbone forward per image, then one batch-1 generator forward per class, in float32."""
    image = sample.image.to(device).unsqueeze(0)
    probs = backbone_probs(backbone, image) if backbone is not None else None
    foreground = []
    for k, class_id in enumerate(sample.class_ids.tolist()):
        seg = probs[:, class_id:class_id + 1] if probs is not None else None
        logits = lpg(lpg_input(image, sample.box_masks[k].to(device)[None, None], seg))
        logits = F.interpolate(logits, size=image.shape[-2:], mode='bilinear', align_corners=True)
        foreground.append(logits.argmax(1)[0] == 1)
    if not foreground:
        return np.zeros((sample.height, sample.width), np.uint8)
    label = compose_label(torch.stack(foreground), sample.box_masks.to(device) > 0.5, sample.class_ids.tolist())
    return label[:sample.height, :sample.width].cpu().numpy()


def generate_lpg(lpg, backbone, items, out_dir, device, precision, test_size, rule='first', pair_batch=16,
                 image_batch=8, workers=2, writer_threads=4, per_box=False, progress=True, max_side=None):
    """The generator's masks of items ((image_id, image_path, boxes)) written to out_dir: loader workers read
    and pad (to test_size), the device generates a batch of images at a time (pair_batch (image, entry) pairs
    per generator forward), writer threads encode and write the PNGs. Returns the (image_id, reason) of the
    images that could not be read, and how many of the others carry an EXIF orientation tag."""
    loader = DataLoader(BoxImageDataset(items, test_size, per_box=per_box, max_side=max_side),
                        batch_size=image_batch, num_workers=workers, collate_fn=collate_boxes,
                        pin_memory=device.type == 'cuda')
    failed, oriented = [], 0
    # A SIGTERM / SIGINT ends the loop after the batch in flight; the writer finishes its files on the way out.
    with INTERRUPTS.guard(), BackgroundWriter(writer_threads) as writer:
        for samples in tqdm(loader, desc='pseudo masks (lpg)', unit='batch', disable=not progress):
            if INTERRUPTS.pending():
                break
            failed += [tuple(sample) for sample in samples if isinstance(sample, UnreadableImage)]
            samples = [sample for sample in samples if not isinstance(sample, UnreadableImage)]
            oriented += sum(sample.orientation != 1 for sample in samples)
            labels, out_of_memory = batch_labels(lpg, backbone, samples, device, precision, rule, pair_batch)
            failed += out_of_memory
            for sample, result in zip(samples, labels):
                if result is not None:
                    label, entries = result
                    write_outputs(writer.submit, out_dir, sample.image_id, label.cpu().numpy(),
                                  entries.cpu().numpy() if per_box else None)
    stop_if_interrupted(interrupted_message)
    return failed, oriented


def batch_labels(lpg, backbone, samples, device, precision, rule='first', pair_batch=16):
    """The label maps of a batch of BoxImageDataset samples: per sample, the generator's foreground of each entry
    (a class, or with --instances a box) inside its boxes, back at the image's own size, composed under the
    overlap rule. Returns (per sample (label, entry foregrounds) or None where the device ran out of memory,
    [(image_id, reason)] of those)."""
    results, failed = foregrounds_or_failures(lpg, samples, device, backbone, pair_batch, precision,
                                              rule == 'confidence')
    labels = []
    for sample, result in zip(samples, results):
        if result is None:
            labels.append(None)
            continue
        entries, scores = result if rule == 'confidence' else (result, None)
        entries, scores, entry_boxes = restore_size(sample, entries, scores)
        labels.append((compose_entries(entries, sample.class_ids.tolist(), rule, scores, entry_boxes), entries))
    return labels, failed


def foregrounds_or_failures(lpg, samples, device, backbone, pair_batch, precision, with_scores):
    """generate_foregrounds of a batch of samples; when the device runs out of memory, each sample again on its
    own, and one that still does not fit is a failure naming its image and --max_side. Returns (per sample its
    result or None, [(image_id, reason)])."""
    try:
        return generate_foregrounds(lpg, samples, device, backbone, pair_batch, precision, with_scores), []
    except RuntimeError as error:  # torch.OutOfMemoryError (CUDA) is one; the CPU allocator raises a plain one
        if not isinstance(error, torch.OutOfMemoryError) and "can't allocate memory" not in str(error):
            raise
        if device.type == 'cuda':
            torch.cuda.empty_cache()
        if len(samples) > 1:
            results, failed = [], []
            for sample in samples:
                result, failure = foregrounds_or_failures(lpg, [sample], device, backbone, pair_batch, precision,
                                                          with_scores)
                results += result
                failed += failure
            return results, failed
        sample = samples[0]
        return [None], [(sample.image_id, f'out of memory at {sample.height}x{sample.width} pixels: pass '
                         '--max_side (e.g. 1024) to generate large images downscaled, or a smaller --batch_size')]
