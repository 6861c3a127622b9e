"""Data formats and datasets of LPG, one module per concern.

- constants: class names, the COCO-60 id mapping, the BGR mean, the VOC palette.
- io: atomic writes, images, label PNGs, JSON.
- voc: PASCAL VOC 2012 (folder layout, split lists, XML boxes, item lists).
- coco: COCO-60 (parseCOCO outputs, LPG training samples, item lists).
- boxes: box masks, padding for LPG, the generation input, label composition (no format knowledge).
- segmentation: the (image, label) dataset backbones train on (no format knowledge).
- transforms: the scale/pad/crop/flip augmentation every dataset shares.
- registry: one entry per dataset (classes, item lists) for the scripts' `--dataset`.
- synthetic: generated COCO- and VOC-format data for the demo and the tests.
"""
