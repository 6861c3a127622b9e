"""The generator's input tensor and box -> pseudo-mask generation, shared by training, generation and the demo."""
import torch
import torch.nn.functional as F


def lpg_input(images, box_masks, seg_probs=None):
    """Channels [seg probability (round >= 2 only), box mask, B, G, R]: the order the released generators expect.

    images: (N, 3, H, W) mean-subtracted BGR; box_masks, seg_probs: (N, 1, H, W).
    """
    parts = [box_masks, images] if seg_probs is None else [seg_probs, box_masks, images]
    return torch.cat(parts, dim=1)


def backbone_probs(backbone, images, size=None):
    """Softmax of a segmentation backbone, resized (bilinear, align_corners=True) to `size`
    (default: the input size)."""
    logits = backbone(images)
    if isinstance(logits, (list, tuple)):  # the multi-scale ResNet in training mode; the fused output is last
        logits = logits[-1]
    size = tuple(images.shape[-2:]) if size is None else size
    logits = F.interpolate(logits.float(), size=size, mode='bilinear', align_corners=True)
    return torch.softmax(logits, dim=1)


def class_channel(probs, class_ids):
    """(N, C, H, W) probabilities, (N,) class ids -> (N, 1, H, W) probability of each sample's class."""
    index = class_ids.view(-1, 1, 1, 1).expand(-1, 1, *probs.shape[-2:])
    return probs.gather(1, index)


def compose_label(foreground, box_masks, class_ids):
    """Paint each class's foreground inside its boxes, in order; a pixel keeps the first class that claims it.

    foreground, box_masks: (K, H, W) bool; class_ids: K ints > 0. Returns an (H, W) uint8 label map.
    """
    label = torch.zeros(foreground.shape[-2:], dtype=torch.uint8, device=foreground.device)
    for fg, box, class_id in zip(foreground, box_masks, class_ids):
        label[fg & box & (label == 0)] = int(class_id)
    return label


def filled_box_label(sample):
    """The filled-box baseline: every box pixel is foreground. Returns an (height, width) uint8 numpy label."""
    boxes = sample['box_masks'] > 0.5
    label = compose_label(boxes, boxes, sample['class_ids'].tolist())
    return label[:sample['height'], :sample['width']].numpy()


@torch.no_grad()
def lpg_foreground(lpg, images, box_masks, seg_probs=None, max_batch=16):
    """Run the generator on (N, 3, H, W) images with (N, 1, H, W) box masks (and class probabilities).

    Logits come out at 1/4 size; they are resized x4 (bilinear, align_corners=True) before the argmax.
    Returns (N, H, W) bool foreground. Samples are processed `max_batch` at a time.
    """
    outputs = []
    for start in range(0, images.shape[0], max_batch):
        stop = start + max_batch
        probs = None if seg_probs is None else seg_probs[start:stop]
        logits = lpg(lpg_input(images[start:stop], box_masks[start:stop], probs))
        logits = F.interpolate(logits.float(), size=images.shape[-2:], mode='bilinear', align_corners=True)
        outputs.append(logits.argmax(dim=1) == 1)
    return torch.cat(outputs)


@torch.no_grad()
def generate_labels(lpg, samples, device, backbone=None, max_batch=16):
    """Pseudo labels for a list of samples from `datasets.boxes.BoxImageDataset`.

    Every (image, class) pair of the batch goes through the generator together. With a backbone
    (round >= 2) each image gets one backbone forward and each class reads its own probability channel.
    Returns a list of (height, width) uint8 numpy labels, cropped back to the image size.
    """
    labels = []
    for sample in samples:
        image = sample['image'].to(device).unsqueeze(0)
        box_masks = sample['box_masks'].to(device)
        class_ids = sample['class_ids'].to(device)
        num_classes_present = len(class_ids)
        if num_classes_present == 0:
            labels.append(torch.zeros(sample['height'], sample['width'], dtype=torch.uint8).numpy())
            continue
        seg_probs = None
        if backbone is not None:
            probs = backbone_probs(backbone, image)
            seg_probs = class_channel(probs.expand(num_classes_present, -1, -1, -1), class_ids)
        foreground = lpg_foreground(lpg, image.expand(num_classes_present, -1, -1, -1), box_masks.unsqueeze(1),
                                    seg_probs, max_batch=max_batch)
        label = compose_label(foreground, box_masks > 0.5, class_ids.tolist())
        labels.append(label[:sample['height'], :sample['width']].cpu().numpy())
    return labels
