"""Segment Anything (SAM) prompted with the boxes: the pseudo-mask baseline a learned box-to-mask generator is
compared with.

SAM (Kirillov et al., 2023; Meta's `segment-anything` package) is trained on SA-1B, 1.1 billion masks of every
kind of object; LPG learns from the auxiliary set's classes only (COCO-60) and never sees a target class. Both
read the same boxes, so `test.py --type masks` scores them side by side.

Each image goes through SAM's image encoder once (SamPredictor.set_image); all its boxes then go through the
prompt encoder and mask decoder in one batch (predict_torch). Per box: the single-mask output, or with
--sam_output best the best of the three multimask outputs by SAM's predicted IoU; the mask is kept inside its
box. An entry (a class, or with --instances a box) is the union of its boxes' masks, scored by the masks' sigmoid
probability, and the entries are composed under the overlap rule as for the other methods.

The package is imported only here, and only when --method sam is chosen; the weights come from the file the user
gives (nothing is downloaded).
"""
import importlib
import os
from functools import partial
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from datasets.boxes import BoxItem, box_entries, collate_boxes, pixel_box
from datasets.io import decode_image
from datasets.validate import UnreadableImage
from utils.engine.checkpoint import load_checkpoint, load_state, unwrap_state_dict
from utils.engine.errors import InputError, MissingFile
from utils.engine.files import BackgroundWriter
from utils.engine.interrupts import INTERRUPTS, stop_if_interrupted

from .compose import compose_entries
from .outputs import interrupted_message, write_outputs

MISSING_PACKAGE = ("--method sam needs Meta's segment-anything package, which is not installed: "
                   'pip install segment-anything')
SAM_OUTPUTS = ('single', 'best')  # SAM's single-mask output, or the best of its three by predicted IoU


def segment_anything():
    """The segment_anything package, or the one-line error that names it."""
    try:
        return importlib.import_module('segment_anything')
    except ImportError as error:
        raise InputError(MISSING_PACKAGE) from error


def add_sam_args(parser):
    """SAM's own flags: the weights, the network and which of its outputs a box takes."""
    parser.add_argument('--sam_checkpoint', help='--method sam: the SAM weights file (e.g. Meta\'s '
                        f'{SAM_CHECKPOINTS["vit_h"][0]}); nothing is downloaded')
    parser.add_argument('--sam_model', choices=list(SAM_MODELS),
                        help='--method sam: the SAM network the checkpoint holds (default: the one whose image '
                        'encoder width the file holds)')
    parser.add_argument('--sam_output', choices=SAM_OUTPUTS, default='single',
                        help="--method sam: each box's mask is SAM's single-mask output (single), or the best of its "
                        'three multimask outputs by predicted IoU (best) (default %(default)s)')


def check_sam_inputs(checkpoint, what='--method sam'):
    """The package and the weights file are there: checked before any work, naming what needs them."""
    segment_anything()
    if not checkpoint:
        raise InputError(f'{what} needs --sam_checkpoint (a SAM weights file; nothing is downloaded)')
    if not os.path.isfile(checkpoint):
        raise MissingFile(f'SAM checkpoint not found: {checkpoint}')


class SamArchitecture(NamedTuple):
    """The numbers that make a SAM network: its ViT image encoder (width, depth, heads, the blocks with global
    attention, the window of the others, the input side), and the prompt and mask decoder's width."""
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple
    image_size: int = 1024
    window_size: int = 14
    prompt_dim: int = 256
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8


# The three released SAM models (those of segment_anything.sam_model_registry), by --sam_model name.
SAM_MODELS = {
    'vit_b': SamArchitecture(768, 12, 12, (2, 5, 8, 11)),
    'vit_l': SamArchitecture(1024, 24, 16, (5, 11, 17, 23)),
    'vit_h': SamArchitecture(1280, 32, 16, (7, 15, 23, 31)),
}
# The official checkpoint file of each (from Meta's segment-anything release) and its size.
SAM_CHECKPOINTS = {'vit_b': ('sam_vit_b_01ec64.pth', '375 MB'), 'vit_l': ('sam_vit_l_0b3195.pth', '1.25 GB'),
                   'vit_h': ('sam_vit_h_4b8939.pth', '2.6 GB')}
OFFICIAL_CHECKPOINTS = ', '.join(f'{name} ({size})' for name, size in SAM_CHECKPOINTS.values())


def build_sam(arch: SamArchitecture):
    """A SAM network of this architecture, randomly initialised, built from the package's modules as its
    sam_model_registry builds the released ones (patch 16, relative positions, the image encoder's LayerNorm
    eps 1e-6, ImageNet pixel mean and std on RGB 0-255)."""
    modeling = segment_anything().modeling
    embedding_side = arch.image_size // 16
    return modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=arch.depth, embed_dim=arch.embed_dim, img_size=arch.image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=arch.num_heads, patch_size=16,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=list(arch.global_attn_indexes),
            window_size=arch.window_size, out_chans=arch.prompt_dim),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=arch.prompt_dim, image_embedding_size=(embedding_side, embedding_side),
            input_image_size=(arch.image_size, arch.image_size), mask_in_chans=16),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=arch.prompt_dim,
                                                   mlp_dim=arch.decoder_mlp_dim, num_heads=arch.decoder_heads),
            transformer_dim=arch.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=arch.prompt_dim),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


def fitting_model(checkpoint):
    """The --sam_model whose image encoder width fits a state dict's patch embedding, or None."""
    weight = checkpoint.get('image_encoder.patch_embed.proj.weight')
    width = weight.shape[0] if torch.is_tensor(weight) else None
    return next((name for name, arch in SAM_MODELS.items() if arch.embed_dim == width), None)


def load_sam(model_name, checkpoint, precision):
    """SamPredictor over the SAM network `model_name` (None: the one whose width the file holds) with the weights
    of `checkpoint`, on the precision's device. A file that holds another model's weights names the --sam_model it
    fits."""
    state_dict = unwrap_state_dict(load_checkpoint(checkpoint), checkpoint)
    fits = fitting_model(state_dict)
    if model_name is None and fits is None:
        raise InputError(f'{checkpoint} does not hold SAM weights of a known size ({", ".join(SAM_MODELS)}): pass '
                         '--sam_model')
    model_name = model_name or fits
    sam = build_sam(SAM_MODELS[model_name])
    try:
        load_state(sam, state_dict, checkpoint, what=f'SAM {model_name}')
    except InputError as error:
        if fits and fits != model_name:
            raise InputError(f'{checkpoint} holds SAM {fits} weights: pass --sam_model {fits}') from error
        raise
    return segment_anything().SamPredictor(sam.to(precision.device))


class SamImage(NamedTuple):
    """An image as SAM reads it (H x W x 3 uint8 RGB, in the frame its annotation declares), with its entries."""
    image_id: str
    image: np.ndarray
    class_ids: list
    entry_boxes: list
    orientation: int


class SamImages(Dataset):
    """The images of box items, decoded (in loader workers), with their entries; an image that cannot be read is
    an UnreadableImage naming it."""

    def __init__(self, items, per_box=False):
        self.items = [BoxItem(*item) for item in items]
        self.per_box = per_box

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image_id, image_path, boxes, frame = self.items[index]
        try:
            image, orientation = decode_image(image_path, frame)
        except (OSError, ValueError) as error:
            return UnreadableImage(image_id, str(error))
        rgb = np.ascontiguousarray(image[..., ::-1].astype(np.uint8))
        return SamImage(image_id, rgb, *box_entries(boxes, self.per_box), orientation)


def box_prompts(entry_boxes, height, width):
    """SAM's box prompts (N, 4), the pixel box of each and its entry. A box covers rows int(y1)..int(y2) and
    columns int(x1)..int(x2) inclusive, clipped to the image (as box_mask fills it); SAM reads corners in
    continuous pixel coordinates, so its prompt ends at the far edge of the last pixel (x2 + 1, y2 + 1). A box
    that lies wholly outside the image gives no prompt."""
    prompts, pixel_boxes, owners = [], [], []
    for k, boxes in enumerate(entry_boxes):
        for box in boxes:
            pixels = pixel_box(*box, height, width)
            if pixels:
                left, top, right, bottom = pixels
                prompts.append([left, top, right + 1, bottom + 1])
                pixel_boxes.append(pixels)
                owners.append(k)
    return torch.tensor(prompts, dtype=torch.float32).reshape(-1, 4), pixel_boxes, owners


@torch.no_grad()
def sam_foregrounds(predictor, sample, precision, output='single'):
    """((K, H, W) bool foreground, (K, H, W) float probability) of a sample's entries: one image-encoder
    forward, then every box prompt in one prompt-encoder and mask-decoder batch."""
    height, width = sample.image.shape[:2]
    foreground = torch.zeros((len(sample.entry_boxes), height, width), dtype=torch.bool)
    scores = torch.zeros(foreground.shape)
    prompts, pixel_boxes, owners = box_prompts(sample.entry_boxes, height, width)
    if not owners:
        return foreground, scores
    with precision.autocast():
        predictor.set_image(sample.image)
        boxes = predictor.transform.apply_boxes_torch(prompts, (height, width)).to(predictor.device)
        logits, predicted_iou, _ = predictor.predict_torch(None, None, boxes=boxes, multimask_output=output == 'best',
                                                           return_logits=True)
    choice = predicted_iou.float().argmax(1)  # always 0 with the single-mask output
    logits = logits[torch.arange(len(owners)), choice].float().cpu()
    for (left, top, right, bottom), owner, box_logits in zip(pixel_boxes, owners, logits):
        inside = (slice(top, bottom + 1), slice(left, right + 1))  # the mask is kept inside its box
        foreground[owner][inside] |= box_logits[inside] > predictor.model.mask_threshold
        scores[owner][inside] = torch.maximum(scores[owner][inside], box_logits[inside].sigmoid())
    return foreground, scores


def generate_sam(predictor, items, out_dir, precision, rule='smaller', output='single', per_box=False, workers=2,
                 writer_threads=4, progress=True):
    """SAM's masks of items ((image_id, image_path, boxes, frame)) written to out_dir as the other methods write
    theirs: loader workers decode, the device runs SAM an image at a time, writer threads write the PNGs.
    Returns the (image_id, reason) of the images that could not be read, and how many of the others carry an
    EXIF orientation tag."""
    loader = DataLoader(SamImages(items, per_box), batch_size=1, num_workers=workers, collate_fn=collate_boxes)
    failed, oriented = [], 0
    # A SIGTERM / SIGINT ends the loop after the image in flight; the writer finishes its files on the way out.
    with INTERRUPTS.guard(), BackgroundWriter(writer_threads) as writer:
        for (sample,) in tqdm(loader, desc='pseudo masks (sam)', unit='img', disable=not progress):
            if INTERRUPTS.pending():
                break
            if isinstance(sample, UnreadableImage):
                failed.append(tuple(sample))
                continue
            oriented += sample.orientation != 1
            foreground, scores = sam_foregrounds(predictor, sample, precision, output)
            label = compose_entries(foreground, sample.class_ids, rule, scores, sample.entry_boxes).numpy()
            write_outputs(writer.submit, out_dir, sample.image_id, label, foreground.numpy() if per_box else None)
    stop_if_interrupted(interrupted_message)
    return failed, oriented
