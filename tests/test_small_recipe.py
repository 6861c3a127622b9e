"""Small-budget training of the generator: the loss weighted inside the boxes (trainLPG.py --box_loss_weight)."""
import torch
import torch.nn.functional as F

import trainLPG
from models.lpg import box_weighted_cross_entropy


def test_box_weighted_cross_entropy_is_the_release_loss_at_weight_1():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 2, 4, 4), torch.randint(0, 2, (2, 4, 4))
    box_masks = torch.zeros(2, 1, 16, 16)
    box_masks[0, 0, 4:12, 0:8] = 1  # cells (1..2, 0..1) of sample 0: top-left pixels 4, 8 and 0, 4
    assert torch.equal(box_weighted_cross_entropy(logits, targets, box_masks, 1.0), F.cross_entropy(logits, targets))
    pixel_loss = F.cross_entropy(logits, targets, reduction='none')
    weights = torch.ones(2, 4, 4)
    weights[0, 1:3, 0:2] = 5
    expected = (pixel_loss * weights).sum() / weights.sum()
    assert torch.allclose(box_weighted_cross_entropy(logits, targets, box_masks, 5.0), expected)


def test_box_loss_weight_and_warmup_are_recorded_and_default_to_the_release():
    args = trainLPG.get_args_parser().parse_args([])
    assert args.box_loss_weight == 1.0 and args.warmup_iterations == 0
    assert {'box_loss_weight', 'warmup_iterations'} <= trainLPG.OUTPUT_FLAGS
