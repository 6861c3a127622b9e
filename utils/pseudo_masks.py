"""Boxes to pseudo masks, in one home: the three baselines, the generator's masks, the rules that compose the
masks of an image's entries (a class, or with --instances a box) into one label map, and the loops
genPseudoMasks.py runs; with the release's one-class-at-a-time loop, the reference the batched one is checked
and timed against.

The baselines, each giving the foreground of every box entry of an image:
- box: the boxes themselves;
- grabcut: OpenCV's GrabCut initialised from each box (its inside "probably foreground", outside background);
- crf: the DenseCRF of utils/crf.py with a unary built from the boxes: inside an entry's boxes the entry is
  likely (BOX_CRF_INSIDE), outside every box the background is.
They run on the CPU, one image per job (genPseudoMasks.py runs them in parallel over images). The generator
runs a batch of images at a time (generate_lpg), its forwards batched by models.lpg.generate_foregrounds.
Segment Anything prompted with the boxes, the fourth baseline, is in utils/sam_masks.py (its package is optional);
it composes its masks and writes them with the functions here.
"""
import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.boxes import BoxImageDataset, BoxItem, box_entries, box_mask, collate_boxes, restore_size
from datasets.custom import rle_annotation
from datasets.errors import InputError, UnreadableImage
from datasets.files import BackgroundWriter, write_json
from datasets.io import decode_image, save_palette_png
from models.lpg import backbone_probs, generate_foregrounds, lpg_input
from utils.crf import DenseCRF
from utils.engine.interrupts import INTERRUPTS, stop_if_interrupted

# --instances: one json per image of per-box masks (RLE), merged into pseudo_masks.json at the end.
INSTANCES = 'instances'


# ---------------------------------------------------------------------------------------------- composition
def compose_label(foreground, box_masks, class_ids):
    """Paint each class's foreground inside its boxes, in order; a pixel keeps the first class that claims it
    (the release's rule).

    foreground, box_masks: (K, H, W) bool; class_ids: K ints > 0. Returns an (H, W) uint8 label map.
    """
    label = torch.zeros(foreground.shape[-2:], dtype=torch.uint8, device=foreground.device)
    for fg, box, class_id in zip(foreground, box_masks, class_ids):
        label[fg & box & (label == 0)] = int(class_id)
    return label


# Where entries claim the same pixel: the first one (the release), the most confident one, the smaller box.
OVERLAP_RULES = ('first', 'confidence', 'smaller')


def covering_box_area(entry_boxes, height, width, device=None):
    """(K, H, W): per entry and pixel, the area of the smallest of the entry's boxes covering it (inf outside)."""
    areas = torch.full((len(entry_boxes), height, width), float('inf'), device=device)
    for k, boxes in enumerate(entry_boxes):
        for x1, y1, x2, y2 in boxes:
            left, top = max(int(x1), 0), max(int(y1), 0)
            right, bottom = min(int(x2), width - 1), min(int(y2), height - 1)
            if right >= left and bottom >= top:
                area = float((int(x2) - int(x1) + 1) * (int(y2) - int(y1) + 1))
                region = areas[k, top:bottom + 1, left:right + 1]
                region.clamp_(max=area)
    return areas


def compose_entries(foreground, class_ids, rule='first', scores=None, entry_boxes=None):
    """One label map from the foreground of each entry (K, H, W bool, each inside its own boxes).

    A pixel that several entries claim goes to the first of them (rule 'first', the release), to the one with
    the highest score ('confidence': scores (K, H, W), e.g. the generator's foreground probability) or to the
    one whose covering box is smallest ('smaller': entry_boxes, per entry its (x1, y1, x2, y2) boxes).
    Returns an (H, W) uint8 label map on the foreground's device."""
    if rule == 'first' or len(class_ids) < 2:
        return compose_label(foreground, foreground, class_ids)
    if rule == 'confidence':
        if scores is None:
            raise InputError('--overlap confidence needs a method that scores its pixels (lpg or crf)')
        choice = torch.where(foreground, scores.float(), torch.tensor(-1.0, device=foreground.device)).argmax(0)
    elif rule == 'smaller':
        areas = covering_box_area(entry_boxes, *foreground.shape[-2:], device=foreground.device)
        choice = torch.where(foreground, areas, torch.tensor(float('inf'), device=foreground.device)).argmin(0)
    else:
        raise InputError(f'unknown overlap rule {rule!r}: expected one of {OVERLAP_RULES}')
    classes = torch.tensor([0] + [int(c) for c in class_ids], dtype=torch.uint8, device=foreground.device)
    return torch.where(foreground.any(0), classes[choice + 1], classes[0])


# ---------------------------------------------------------------------------------------------- baselines
GRABCUT_ITERATIONS = 5
GRABCUT_RNG_SEED = 0  # GrabCut's k-means draws from OpenCV's per-thread RNG: seeded per box, a mask does not
# depend on which worker ran which images before it
BOX_CRF_INSIDE = 0.6  # probability of the entry inside its boxes; the background gets the rest
BOX_CRF_PARAMS = dict(iter_max=10, pos_w=3, pos_xy_std=3, bi_w=10, bi_xy_std=40, bi_rgb_std=10)


def box_foreground(entry_boxes, height, width):
    """(K, H, W) bool: each entry's boxes, filled."""
    return np.stack([box_mask(boxes, height, width).astype(bool) for boxes in entry_boxes]) if entry_boxes \
        else np.zeros((0, height, width), bool)


def grabcut_foreground(image_bgr, entry_boxes):
    """(K, H, W) bool: per entry, the union of GrabCut's foreground in each of its boxes (a box too small for
    GrabCut stays filled)."""
    height, width = image_bgr.shape[:2]
    image = np.ascontiguousarray(image_bgr, dtype=np.uint8)
    masks = np.zeros((len(entry_boxes), height, width), bool)
    for k, boxes in enumerate(entry_boxes):
        for box in boxes:
            inside = box_mask([box], height, width).astype(bool)
            ys, xs = np.nonzero(inside)
            if not len(xs) or np.ptp(xs) < 2 or np.ptp(ys) < 2 or inside.all():
                masks[k] |= inside  # GrabCut needs a box with some outside around it and some area
                continue
            rect = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
            labels = np.zeros((height, width), np.uint8)
            cv2.setRNGSeed(GRABCUT_RNG_SEED)
            cv2.grabCut(image, labels, rect, np.zeros((1, 65)), np.zeros((1, 65)), GRABCUT_ITERATIONS,
                        cv2.GC_INIT_WITH_RECT)
            masks[k] |= inside & ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD))
    return masks


def crf_foreground(image_bgr, entry_boxes, params=None):
    """((K, H, W) bool foreground, (K, H, W) float probability): DenseCRF on a unary built from the boxes,
    each entry's foreground kept inside its boxes."""
    height, width = image_bgr.shape[:2]
    boxes = box_foreground(entry_boxes, height, width)
    weight = np.concatenate([np.ones((1, height, width), np.float32),
                             boxes.astype(np.float32) * BOX_CRF_INSIDE])
    weight[0] = np.where(boxes.any(0), 1.0 - BOX_CRF_INSIDE, 1.0)
    prob = weight / weight.sum(0, keepdims=True)
    refined = DenseCRF(**(params or BOX_CRF_PARAMS))(np.ascontiguousarray(image_bgr, dtype=np.uint8),
                                                     np.clip(prob, 1e-5, 1.0))
    choice = refined.argmax(0)
    foreground = np.stack([(choice == k + 1) for k in range(len(entry_boxes))]) & boxes if len(entry_boxes) \
        else boxes
    return foreground, refined[1:]


# ---------------------------------------------------------------------------------------------- the generator
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
    stop_if_interrupted(lambda name: f'interrupted by {name}: the masks written so far are complete and kept; rerun '
                        'the same command to make the others (the written ones are skipped)')
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


def baseline_image(method, item, out_dir, rule, per_box):
    """One image of a baseline (a job of its own): writes its mask. Returns (its EXIF orientation tag, None), or
    (None, (image_id, reason)) if it failed."""
    image_id, image_path, boxes, frame = BoxItem(*item)
    try:
        image, orientation = decode_image(image_path, frame)
        image = image.astype(np.uint8)
    except (OSError, ValueError) as error:
        return None, (image_id, str(error))
    class_ids, entry_boxes = box_entries(boxes, per_box)
    scores = None
    if method == 'box':
        foreground = box_foreground(entry_boxes, *image.shape[:2])
    elif method == 'grabcut':
        foreground = grabcut_foreground(image, entry_boxes)
    else:
        foreground, scores = crf_foreground(image, entry_boxes)
        scores = torch.from_numpy(scores)
    foreground = torch.from_numpy(foreground)
    label = compose_entries(foreground, class_ids, rule, scores, entry_boxes).numpy()
    write_outputs(lambda function, *args: function(*args), out_dir, image_id, label,
                  foreground.numpy() if per_box else None)
    return orientation, None
