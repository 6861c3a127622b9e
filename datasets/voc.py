"""PASCAL VOC 2012: the folder layout, split lists, XML boxes, and the item lists the datasets read."""
import os
import warnings
import xml.etree.ElementTree as ElementTree
from collections import Counter
from typing import Iterable, Optional

from utils.engine.errors import InputError, MissingFile
from utils.engine.files import folder_in_root

from .boxes import BoxItem
from .constants import VOC_CLASS_TO_ID
from .io import ImageFrame
from .segmentation import SegmentationItem

# A box of an annotation XML: (class_id, x1, y1, x2, y2), 0-based inclusive pixel coordinates.
VocBox = tuple[int, int, int, int, int]


def resolve_voc_root(path: str) -> str:
    """Accept the VOC2012 folder itself, its parent, or the VOCdevkit's parent."""
    for candidate in (path, os.path.join(path, 'VOC2012'), os.path.join(path, 'VOCdevkit', 'VOC2012')):
        if os.path.isdir(os.path.join(candidate, 'JPEGImages')):
            return candidate
    raise MissingFile(
        f'no PASCAL VOC 2012 found at {path}: expected JPEGImages/ in it, in {path}/VOC2012 '
        f'or in {path}/VOCdevkit/VOC2012')


def check_image_id(image_id: str, where: str) -> str:
    """Refuse ids that would name a file outside their folder: path separators, '..', absolute paths."""
    if (not image_id or '/' in image_id or '\\' in image_id or image_id in ('.', '..') or os.path.isabs(image_id)
            or '\0' in image_id):
        raise InputError(f'{where}: image id {image_id!r} is not a plain file name (ids may not contain path '
                         'separators or be "..")')
    return image_id


def read_split(path: str) -> list[str]:
    """Split file -> list of image ids, one per line (blank lines skipped; a repeated id is kept once, with a
    warning). Ids that are not plain file names are refused, naming the line."""
    if not os.path.isfile(path):
        raise MissingFile(f'split file not found: {path}')
    with open(path) as split:
        lines = [(number, line.strip()) for number, line in enumerate(split, 1) if line.strip()]
    ids = [check_image_id(image_id, f'{path}, line {number}') for number, image_id in lines]
    if not ids:
        raise InputError(f'split file {path} lists no image ids')
    unique = list(dict.fromkeys(ids))
    if len(unique) < len(ids):
        repeated = [image_id for image_id, count in Counter(ids).items() if count > 1]
        warnings.warn(f'{path} lists {len(ids) - len(unique)} repeated image ids (each is used once): '
                      f'{", ".join(repeated[:5])}{" ..." if len(repeated) > 5 else ""}')
    return unique


def split_file(voc_root: str, split: str, split_file: Optional[str] = None) -> str:
    """The split list to read: split_file if given, else ImageSets/Segmentation/<split>.txt."""
    if split_file:
        return split_file
    return os.path.join(voc_root, 'ImageSets', 'Segmentation', f'{split}.txt')


def _coordinate(bndbox, tag, path, object_index):
    node = bndbox.find(tag)
    if node is None or node.text is None:
        raise InputError(f'{path}: object {object_index} has a <bndbox> without <{tag}>')
    try:
        return int(float(node.text.strip()))
    except ValueError:
        raise InputError(f'{path}: object {object_index} has a non-numeric <{tag}> {node.text!r}') from None


def _xml_size(root, path):
    size = root.find('size')
    if size is None:
        return None, None
    try:
        return int(float(size.findtext('width'))), int(float(size.findtext('height')))
    except (TypeError, ValueError):
        raise InputError(f'{path}: <size> has no valid <width>/<height>') from None


def parse_voc_xml(path: str, width: Optional[int] = None, height: Optional[int] = None) -> list[VocBox]:
    """VOC annotation XML -> [(class_id, x1, y1, x2, y2)], 0-based inclusive coordinates (see
    read_voc_annotation)."""
    return read_voc_annotation(path, width, height)[0]


def read_voc_annotation(path: str, width: Optional[int] = None,
                        height: Optional[int] = None) -> tuple[list[VocBox], Optional[ImageFrame]]:
    """VOC annotation XML -> ([(class_id, x1, y1, x2, y2)], 0-based inclusive coordinates; the ImageFrame its
    <size> declares, or None when it has none).

    Only the <object> elements directly under the root are objects: a person's <part> boxes (head,
    hand, foot) are not. Boxes are clipped to the image (width/height if given, else the XML's
    <size>); a box with no area left after clipping (x2 <= x1 or y2 <= y1) is skipped with a warning."""
    if not os.path.isfile(path):
        raise MissingFile(f'VOC annotation file not found: {path}')
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise InputError(f'malformed VOC annotation XML {path}: {error}') from error
    xml_width, xml_height = _xml_size(root, path)
    frame = None if xml_width is None else ImageFrame(xml_height, xml_width, f'the <size> in its annotation {path}')
    width = xml_width if width is None else width
    height = xml_height if height is None else height

    boxes = []
    for object_index, obj in enumerate(root.findall('object')):
        name = (obj.findtext('name') or '').strip()
        if name not in VOC_CLASS_TO_ID or name == 'background':
            raise InputError(f'{path}: object {object_index} has unknown class name {name!r}')
        bndbox = obj.find('bndbox')
        if bndbox is None:
            raise InputError(f'{path}: object {object_index} ({name}) has no <bndbox>')
        x1, y1, x2, y2 = (_coordinate(bndbox, tag, path, object_index) - 1
                          for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
        # The original aborted on boxes leaving the image; clipping keeps the object.
        x1, y1 = max(x1, 0), max(y1, 0)
        if width is not None:
            x1, x2 = min(x1, width - 1), min(x2, width - 1)
        if height is not None:
            y1, y2 = min(y1, height - 1), min(y2, height - 1)
        if x2 <= x1 or y2 <= y1:
            warnings.warn(f'{path}: object {object_index} ({name}) has a zero-size box '
                          f'({x1}, {y1}, {x2}, {y2}) after clipping; skipped')
            continue
        boxes.append((VOC_CLASS_TO_ID[name], x1, y1, x2, y2))
    return boxes, frame


def voc_items(voc_root: str, ids: Iterable[str], label_dir: str) -> list[SegmentationItem]:
    """Items for SegmentationDataset: JPEGImages/ID.jpg with <label_dir>/ID.png (label_dir absolute or under
    voc_root)."""
    directory = folder_in_root(voc_root, label_dir)
    return [SegmentationItem(image_id, os.path.join(voc_root, 'JPEGImages', f'{image_id}.jpg'),
                             os.path.join(directory, f'{image_id}.png')) for image_id in ids]


def voc_box_items(voc_root: str, ids: Iterable[str], errors: Optional[list[tuple[str, str]]] = None) -> list[BoxItem]:
    """BoxItems for VOC ids, boxes from Annotations/ID.xml (VOC class ids 1..20), in the frame its <size>
    declares.

    errors: None to raise at a missing or malformed XML, or a list that collects (image_id, message) while
    the other images go on."""
    items = []
    for image_id in ids:
        try:
            boxes, frame = read_voc_annotation(os.path.join(voc_root, 'Annotations', f'{image_id}.xml'))
        except (OSError, ValueError) as error:
            if errors is None:
                raise
            errors.append((image_id, str(error)))
            continue
        items.append(BoxItem(image_id, os.path.join(voc_root, 'JPEGImages', f'{image_id}.jpg'), boxes, frame))
    return items
