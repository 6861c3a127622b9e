"""The baselines that need no training, each giving the foreground of every box entry of an image:
- box: the boxes themselves;
- grabcut: OpenCV's GrabCut initialised from each box (its inside "probably foreground", outside background);
- crf: the DenseCRF of utils/crf.py with a unary built from the boxes: inside an entry's boxes the entry is
  likely (BOX_CRF_INSIDE), outside every box the background is.
They run on the CPU, one image per job (baseline_image; generate_baseline runs them in parallel over images), at
the image's own size or, with --max_side, downscaled as the generator reads it. Memory grows with the image area:
box one bool mask per entry; grabcut one label map and its graph per box; crf (entries + 1) float32 maps
several times over (the unary, the CRF's buffers, the refined probabilities).
"""
import cv2
import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm import tqdm

from datasets.boxes import BoxItem, box_entries, box_mask, downscaled, upscaled_inside
from datasets.io import decode_image
from utils.crf import DenseCRF

from .compose import compose_entries
from .outputs import write_outputs

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


def box_baseline(image_bgr, entry_boxes):
    """The box method: each entry's boxes, filled (no probabilities)."""
    return box_foreground(entry_boxes, *image_bgr.shape[:2]), None


def grabcut_baseline(image_bgr, entry_boxes):
    """The grabcut method: GrabCut's foreground in each box (no probabilities)."""
    return grabcut_foreground(image_bgr, entry_boxes), None


def crf_baseline(image_bgr, entry_boxes):
    """The crf method: the DenseCRF foreground and its probabilities."""
    return crf_foreground(image_bgr, entry_boxes)


def baseline_image(foreground_of, item, out_dir, rule, per_box, max_side=None):
    """One image of a method that needs no network (a job of its own): writes its mask. foreground_of(image_bgr
    uint8, entry_boxes) gives ((K, H, W) bool foreground, (K, H, W) float probabilities or None), e.g.
    box_baseline. An image whose longer side exceeds max_side is read downscaled to it (its boxes with it) and its
    masks brought back with nearest resizing, inside the boxes, as the generator does. Returns (its EXIF
    orientation tag, None), or (None, (image_id, reason)) if it failed."""
    image_id, image_path, boxes, frame = BoxItem(*item)
    try:
        image, orientation = decode_image(image_path, frame)
    except (OSError, ValueError) as error:
        return None, (image_id, str(error))
    class_ids, full_entries = box_entries(boxes, per_box)
    full_size = image.shape[:2]
    image, entry_boxes = downscaled(image, full_entries, max_side)
    image = np.rint(image).astype(np.uint8)  # decoded as float32; area interpolation leaves fractions
    foreground, scores = foreground_of(image, entry_boxes)
    foreground = torch.from_numpy(foreground)
    scores = None if scores is None else torch.from_numpy(scores)
    if image.shape[:2] != full_size:
        foreground, scores = upscaled_inside(foreground, scores, full_size, full_entries)
        entry_boxes = full_entries
    label = compose_entries(foreground, class_ids, rule, scores, entry_boxes).numpy()
    write_outputs(lambda function, *args: function(*args), out_dir, image_id, label,
                  foreground.numpy() if per_box else None)
    return orientation, None


def generate_baseline(foreground_of, job):
    """A method without a network over this process's images: one job per image, --n_jobs in parallel."""
    a = job.args
    jobs = Parallel(n_jobs=a.n_jobs)(
        delayed(baseline_image)(foreground_of, item, job.out_dir, job.rule, a.instances, a.max_side)
        for item in tqdm(job.items, desc=f'pseudo masks ({a.method})', unit='img', disable=not job.ctx.is_main))
    return [failure for _, failure in jobs if failure], sum(tag not in (None, 1) for tag, _ in jobs)
