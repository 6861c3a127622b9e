"""Data formats and datasets of LPG, one module per concern. They build on utils/engine (errors, files) only.

- constants: class names, the COCO-60 id mapping, the BGR mean, the VOC palette.
- io: images decoded in their annotation's frame, label PNGs, input tensors.
- voc: PASCAL VOC 2012 (folder layout, split lists, XML boxes, item lists).
- coco: COCO-60 (parseCOCO outputs, LPG training samples, item lists).
- coco_json: COCO-format instance jsons (reading, checking, rasterising boxes and masks).
- custom: any COCO-format dataset, as a target (boxes) or an auxiliary set (masks).
- lpg_samples: the generator's training samples, one per (image, class present).
- validate: up-front checks of a job's images and labels, and UnreadableImage (a sample a job skips).
- boxes: box masks, padding for LPG, the generation input, label composition (no format knowledge).
- segmentation: the (image, label) dataset backbones train on (no format knowledge).
- transforms: the scale/pad/crop/flip augmentation every dataset shares.
- registry: one entry per dataset (classes, item lists) for the scripts' `--dataset`.
- synthetic: generated COCO- and VOC-format data for the demo and the tests.
"""
