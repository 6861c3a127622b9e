"""Datasets, data formats and the shared augmentation of the LPG reimplementation."""
from .boxes import BoxImageDataset, box_mask, coco_box_items, collate_boxes, pad_size, voc_box_items
from .coco import COCO60LPGDataset, coco_image_id, load_bbox_annos
from .constants import (COCO60_IDS, COCO_ID_TO_60, COCO_VOC_IDS, IGNORE_LABEL, MEAN_BGR, VOC_CLASS_TO_ID,
                        VOC_CLASSES, VOC_PALETTE)
from .io import read_image_bgr, read_label, save_gray_png, save_palette_png, to_tensor_image
from .transforms import ScalePadCropFlip
from .voc import (SegmentationDataset, coco_items, parse_voc_xml, read_split, resolve_voc_root, split_file,
                  voc_items)
