"""The LPG generator: its network, its input and its box -> pseudo-mask inference.

The generator is class-agnostic: for one class of one image it reads [segmentation probability of that
class (round >= 2 only), box mask of that class, B, G, R] and predicts background/foreground at 1/4 of the
input size. Pseudo masks are made by running it once per (image, class present) and painting each class's
foreground inside its own boxes.
"""
import contextlib
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .hourglass import HOURGLASS_BLOCKS, HOURGLASS_DIMS, LPG_STRIDE, ConvBNReLU, HourglassLevel, Residual


def lpg_in_channels(round_: int) -> int:
    """Round 1 reads box mask + image (4 channels); later rounds add the backbone probability (5)."""
    return 4 if round_ == 1 else 5


class LPGNet(nn.Module):
    """Class-agnostic pseudo-mask generator (one-stack hourglass).

    Input: B x in_channels x H x W with channels [seg probability (round >= 2),
    box mask, B, G, R] (image mean-subtracted BGR); H and W must be multiples of
    `LPG_STRIDE` (pad, never crop, to get there).
    Output: B x 2 x H/4 x W/4 background/foreground logits.

    in_channels is 4 for round 1 (no backbone probability) and 5 for later rounds.

    The forward pass is torch.compile(fullgraph=True) and autocast friendly: the only
    Python-side shape logic is the input check, which compiles to a guard (under
    fullgraph=True a bad size surfaces as a dynamo error quoting the ValueError).
    """

    def __init__(self, in_channels: int = 5):
        super().__init__()
        self.in_channels = in_channels
        # pre/kps/cnvs/fm and the single-element ModuleLists: fixed by the checkpoint keys
        # (`kps.0.*`, `cnvs.0.*`, `fm.0.*`); the release built them for a configurable number of stacks.
        self.pre = nn.Sequential(ConvBNReLU(7, in_channels, 48, stride=2),
                                 Residual(48, HOURGLASS_DIMS[0], stride=2))
        self.kps = nn.ModuleList([HourglassLevel(HOURGLASS_DIMS, HOURGLASS_BLOCKS)])
        self.cnvs = nn.ModuleList([ConvBNReLU(3, HOURGLASS_DIMS[0], 256)])
        self.fm = nn.ModuleList([nn.Sequential(ConvBNReLU(3, 256, HOURGLASS_DIMS[0], with_bn=False),
                                               nn.Conv2d(HOURGLASS_DIMS[0], 2, 1))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % LPG_STRIDE or width % LPG_STRIDE:
            raise ValueError(f'LPGNet input must have height and width that are multiples of {LPG_STRIDE}, '
                             f'got {height}x{width}: pad the input (bottom/right), never crop it')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'LPGNet was built for {self.in_channels} input channels, got {x.shape[1]}')
        x = self.pre(x)
        x = self.kps[0](x)
        x = self.cnvs[0](x)
        return self.fm[0](x)


FIRST_CONV_KEY = 'pre.0.conv.weight'


def widen_to_five_channels(state_dict: dict) -> dict:
    """A round-1 (4-channel) generator's weights as the start of a 5-channel one.

    The 4 input filters go to the box and image channels and the seg-probability filter starts at 0, so the
    widened network computes exactly what the round-1 one did until training changes it. Other state dicts
    are returned unchanged."""
    first = state_dict.get(FIRST_CONV_KEY)
    if first is None or first.shape[1] != 4:
        return state_dict
    widened = first.new_zeros((first.shape[0], 5, *first.shape[2:]))
    widened[:, 1:] = first
    return {**state_dict, FIRST_CONV_KEY: widened}


def lpg_input(images: torch.Tensor, box_masks: torch.Tensor, seg_probs: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Channels [seg probability (round >= 2 only), box mask, B, G, R]: the order the released generators expect.

    images: (N, 3, H, W) mean-subtracted BGR; box_masks, seg_probs: (N, 1, H, W).
    """
    parts = [box_masks, images] if seg_probs is None else [seg_probs, box_masks, images]
    return torch.cat(parts, dim=1)


def box_weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, box_masks: torch.Tensor,
                               box_loss_weight: float = 1.0) -> torch.Tensor:
    """The generator's training loss: the 2-class cross entropy of its (N, 2, h, w) logits against (N, h, w)
    targets, each pixel inside the sample's boxes ((N, 1, H, W) box masks, H = 4h) weighted box_loss_weight against
    1 outside, as a weighted mean; at 1, the release's plain mean. Most of a crop lies outside the boxes, where the
    box channel alone says background, and only the pixels inside are ever kept: weighting them stops a short run
    from settling on background everywhere (trainLPG.py --box_loss_weight)."""
    if box_loss_weight == 1.0:
        return F.cross_entropy(logits, targets)
    # The box mask at the output's cells, sampled as the target is: the top-left pixel of each cell.
    stride = box_masks.shape[-1] // targets.shape[-1]
    inside = box_masks[:, 0, ::stride, ::stride].to(logits.device) > 0.5
    weights = torch.where(inside, box_loss_weight, 1.0)
    return (F.cross_entropy(logits, targets, reduction='none') * weights).sum() / weights.sum()


# Where the round >= 2 generator's probability channel comes from: the previous round's backbone (the method),
# or `UniformProbabilities` (the ablation that isolates what the alternation adds).
SEG_PROBS = ('backbone', 'uniform')


class UniformProbabilities(nn.Module):
    """A stand-in for the previous round's backbone: zero logits for every class, so the probability channel
    the generator reads is 1 / num_classes at every pixel, the same for every image and class. A round-2
    generator trained and run on it differs from the method only in that channel, which then carries nothing
    beyond the box: the ablation that shows what reading the backbone adds."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.new_zeros((images.shape[0], self.num_classes, *images.shape[-2:]))


def backbone_probs(backbone: nn.Module, images: torch.Tensor, size: Optional[tuple] = None) -> torch.Tensor:
    """Softmax of a segmentation backbone, resized (bilinear, align_corners=True) to `size`
    (default: the input size)."""
    logits = backbone(images)
    if isinstance(logits, (list, tuple)):  # the multi-scale ResNet in training mode; the fused output is last
        logits = logits[-1]
    size = tuple(images.shape[-2:]) if size is None else size
    logits = F.interpolate(logits.float(), size=size, mode='bilinear', align_corners=True)
    return torch.softmax(logits, dim=1)


def class_channel(probs: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) probabilities, (N,) class ids -> (N, 1, H, W) probability of each sample's class."""
    index = class_ids.view(-1, 1, 1, 1).expand(-1, 1, *probs.shape[-2:])
    return probs.gather(1, index)


BACKBONE_CHUNK = 8  # samples per forward of the frozen backbone (its full-resolution probabilities are large)


def frozen_class_probs(backbone: nn.Module, images: torch.Tensor, class_ids: torch.Tensor, precision) -> torch.Tensor:
    """Each sample's probability channel of its class, as the generator reads it in training: from no-grad forwards
    of the frozen backbone in the inference memory format (`precision.frozen`, of utils.engine.precision.Precision),
    BACKBONE_CHUNK samples at a time: the full-resolution probabilities of every class then exist for one chunk
    only (61 x 512 x 512 floats per sample), not for the whole batch."""
    images = precision.frozen.prepare_input(images)
    with torch.no_grad():
        return torch.cat([class_channel(backbone_probs(backbone, chunk), ids).contiguous()
                          for chunk, ids in zip(images.split(BACKBONE_CHUNK), class_ids.split(BACKBONE_CHUNK))])


def pairs_foreground(lpg: nn.Module, images: torch.Tensor, owners: torch.Tensor, box_masks: torch.Tensor,
                     seg_probs: Optional[torch.Tensor] = None, max_batch: int = 16,
                     autocast: Callable = contextlib.nullcontext, with_scores: bool = False):
    """Run the generator on (image, class) pairs and return their (P, H, W) bool foreground (and, with_scores,
    the (P, H, W) foreground probability).

    images: (B, 3, H, W); owners: (P,) index of each pair's image; box_masks: (P, 1, H, W); seg_probs:
    (P, 1, H, W) or None. Pairs go through the generator `max_batch` at a time. Logits come out at 1/4 size;
    they are resized x4 (bilinear, align_corners=True) in float32 before the argmax, as in the release."""
    outputs, scores = [], []
    for start in range(0, len(owners), max_batch):
        chunk = slice(start, start + max_batch)
        probs = None if seg_probs is None else seg_probs[chunk]
        with autocast():
            logits = lpg(lpg_input(images[owners[chunk]], box_masks[chunk], probs))
        logits = F.interpolate(logits.float(), size=images.shape[-2:], mode='bilinear', align_corners=True)
        outputs.append(logits.argmax(dim=1) == 1)
        if with_scores:
            scores.append(torch.softmax(logits, dim=1)[:, 1])
    return (torch.cat(outputs), torch.cat(scores)) if with_scores else torch.cat(outputs)


@torch.no_grad()
def generate_foregrounds(lpg: nn.Module, samples: list, device: torch.device, backbone: Optional[nn.Module] = None,
                         max_batch: int = 16, precision=None, with_scores: bool = False) -> list:
    """The generator's foreground inside each box entry of each sample (`datasets.boxes.BoxImageDataset`).

    The images of one padded size form one batch: one backbone forward for all of them (round >= 2), then
    every (image, entry) pair goes through the generator, `max_batch` pairs per forward, each reading its
    class's probability channel. `precision` (utils.engine.precision.Precision) sets autocast and memory format.
    Returns, per sample, a (K, height, width) bool tensor on the device, cropped to the image, each entry's
    foreground kept inside its own boxes; with_scores, per sample (foreground, foreground probability).
    """
    autocast = precision.autocast if precision is not None else contextlib.nullcontext
    to_device = precision.prepare_input if precision is not None else (lambda t: t.to(device))
    results = [None] * len(samples)
    by_size = {}
    for index, sample in enumerate(samples):
        by_size.setdefault(tuple(sample.image.shape[-2:]), []).append(index)
    for indices in by_size.values():
        group = [samples[i] for i in indices]
        counts = [len(sample.class_ids) for sample in group]
        foreground = torch.zeros(0, *group[0].image.shape[-2:], dtype=torch.bool, device=device)
        box_masks, scores = foreground, foreground.float()
        if sum(counts):
            images = to_device(torch.stack([sample.image for sample in group]))
            box_masks = torch.cat([sample.box_masks for sample in group]).to(device).unsqueeze(1)
            class_ids = torch.cat([sample.class_ids for sample in group]).to(device)
            owners = torch.repeat_interleave(torch.arange(len(group), device=device),
                                             torch.tensor(counts, device=device))
            seg_probs = None
            if backbone is not None:
                with autocast():
                    probs = backbone_probs(backbone, images)
                seg_probs = probs[owners, class_ids].unsqueeze(1)  # each pair's own class channel
            foreground = pairs_foreground(lpg, images, owners, box_masks, seg_probs, max_batch, autocast, with_scores)
            if with_scores:
                foreground, scores = foreground
            box_masks = box_masks[:, 0] > 0.5
        for i, sample, fg, boxes, score in zip(indices, group, foreground.split(counts), box_masks.split(counts),
                                               scores.split(counts) if with_scores else [None] * len(group)):
            crop = (slice(None), slice(0, sample.height), slice(0, sample.width))
            results[i] = ((fg & boxes)[crop], score[crop]) if with_scores else (fg & boxes)[crop]
    return results
