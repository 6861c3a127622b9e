"""Per-image predictions from saved logits: the argmax and the DenseCRF label maps as palette PNGs, with their
confusion matrices against the ground truth when there is one.

Ground truth is a folder of label PNGs named <image_id>.png; images come as (image_id, image_path).
"""
import os

import numpy as np

from datasets.io import ImageFrame, read_image_bgr, read_label, save_palette_png
from utils.crf import DenseCRF
from utils.evaluation.logits import probabilities
from utils.evaluation.metric import confusion_matrix


def evaluate_image(image_id, image_path, gt_dir, logits_dir, out_dirs, num_classes, crf_params, crf_on_padded=False):
    """Prediction without (and, given crf_params, with) CRF (crf_label) for one image. Returns (image_id,
    confusion matrices), or (image_id, reason) when the image cannot be scored: no logits (its image failed),
    a missing or unreadable ground truth, or one whose size is not the image's (never scored on a crop)."""
    logits_path = os.path.join(logits_dir, f'{image_id}.npz')
    if not os.path.exists(logits_path):
        return image_id, 'no logits (the image could not be read)'
    gt_path = os.path.join(gt_dir, f'{image_id}.png')
    try:
        label = read_label(gt_path)
    except (OSError, ValueError) as error:
        return image_id, str(error)
    prob, image_size = probabilities(logits_path)
    if label.shape != image_size:
        return image_id, (f'ground truth {gt_path} is {label.shape[1]}x{label.shape[0]} '
                          f'but the image is {image_size[1]}x{image_size[0]}')
    height, width = label.shape
    prediction = prob[:, :height, :width].argmax(0).astype(np.uint8)
    save_palette_png(os.path.join(out_dirs['pred'], f'{image_id}.png'), prediction)
    hists = {'without CRF': confusion_matrix(label, prediction, num_classes)}
    if crf_params is not None:
        refined = crf_label(prob, image_path, (height, width), crf_params, crf_on_padded)
        save_palette_png(os.path.join(out_dirs['crf'], f'{image_id}.png'), refined)
        hists['with CRF'] = confusion_matrix(label, refined, num_classes)
    return image_id, hists


def crf_label(prob, image_path, image_size, crf_params, crf_on_padded=False):
    """DenseCRF's label map of an image: on the image itself, or with crf_on_padded (the release) on the whole
    padded network input, the image padded with black, cropped afterwards."""
    height, width = image_size
    # In the frame its logits were computed in (that of its ground truth, when an EXIF tag turns the image).
    frame = ImageFrame(height, width, 'the image size stored with its logits')
    image = read_image_bgr(image_path, frame).astype(np.uint8)
    if crf_on_padded:
        image = np.pad(image, ((0, prob.shape[1] - height), (0, prob.shape[2] - width), (0, 0)))
    else:
        prob = np.ascontiguousarray(prob[:, :height, :width])
    return DenseCRF(**crf_params)(image, prob).argmax(0)[:height, :width].astype(np.uint8)


def predict_image(image_id, image_path, logits_dir, out_dir, crf_params=None, crf_on_padded=False):
    """The label map of an image without ground truth (argmax, or DenseCRF given crf_params) as a palette PNG
    in out_dir. Returns None, or (image_id, reason) when it has no logits."""
    logits_path = os.path.join(logits_dir, f'{image_id}.npz')
    if not os.path.exists(logits_path):
        return image_id, 'no logits (the image could not be read)'
    prob, (height, width) = probabilities(logits_path)
    label = prob[:, :height, :width].argmax(0).astype(np.uint8) if crf_params is None else \
        crf_label(prob, image_path, (height, width), crf_params, crf_on_padded)
    save_palette_png(os.path.join(out_dir, f'{image_id}.png'), label)
    return None


