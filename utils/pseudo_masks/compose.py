"""The overlap rules: one label map from the masks of an image's entries (a class, or with --instances a box),
where several entries claim a pixel."""
import torch

from datasets.boxes import pixel_box
from utils.engine.errors import InputError


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
            pixels = pixel_box(x1, y1, x2, y2, height, width)
            if pixels:
                left, top, right, bottom = pixels
                area = float((int(x2) - int(x1) + 1) * (int(y2) - int(y1) + 1))  # the whole box, not its clipped part
                areas[k, top:bottom + 1, left:right + 1].clamp_(max=area)
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
