"""Constants shared by every dataset and script, defined once: class names, the COCO-60 id mapping,
the BGR mean and the VOC palette."""
import numpy as np

VOC_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
    'sheep', 'sofa', 'train', 'tvmonitor',
)
VOC_CLASS_TO_ID = {name: index for index, name in enumerate(VOC_CLASSES)}

# The 80 category ids used by MS-COCO 2014/2017 instance annotations (ids are not contiguous).
COCO_CATEGORY_IDS = tuple(
    list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45))
    + list(range(46, 66)) + [67, 70] + list(range(72, 83)) + list(range(84, 91))
)
# Their names, in the same order.
COCO_CATEGORY_NAMES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat',
    'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
    'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
    'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
    'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse',
    'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
    'toothbrush',
)

# COCO categories that are also PASCAL VOC classes; LPG's auxiliary set (COCO-60) drops them.
COCO_VOC_IDS = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72})
# The released 61-class checkpoints index the remaining categories in ascending id order, 1..60.
COCO60_IDS = tuple(sorted(set(COCO_CATEGORY_IDS) - COCO_VOC_IDS))
COCO_ID_TO_60 = {coco_id: index + 1 for index, coco_id in enumerate(COCO60_IDS)}

# Caffe-style BGR mean the released checkpoints were trained with.
MEAN_BGR = np.array((104.008, 116.669, 122.675), dtype=np.float32)

IGNORE_LABEL = 255


def _voc_colormap(num_colors=256):
    """The standard PASCAL VOC colour map (bit-interleaved class index)."""
    palette = []
    for index in range(num_colors):
        red = green = blue = 0
        code = index
        for bit in range(8):
            red |= ((code >> 0) & 1) << (7 - bit)
            green |= ((code >> 1) & 1) << (7 - bit)
            blue |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette.extend((red, green, blue))
    return palette


# Flat list of 768 ints for PIL's putpalette; entry 255 is (224, 224, 192).
VOC_PALETTE = _voc_colormap()

assert len(COCO60_IDS) == 60 and len(COCO_VOC_IDS) == 20  # a typo in the tables above would break checkpoints
