"""Build VOC 2012's `train_aug` set from SBD (the Semantic Boundaries Dataset of Hariharan et al.).

    python utils/make_voc_aug.py --sbd_root benchmark_RELEASE/dataset --voc_root VOCdevkit/VOC2012

writes
  SegmentationClassAug/ID.png          SBD's cls/ID.mat segmentations as palette PNGs (class indices 0..20),
                                       then VOC's own SegmentationClass/ID.png over them where VOC has one
                                       (those keep their 255 void borders), as the usual recipe does;
  ImageSets/Segmentation/train_aug.txt SBD train + SBD val + VOC train, minus VOC val, sorted.
On the real data that is 10,582 ids; the count found is printed. Writes are atomic; a rerun on the same inputs
skips the PNGs already written (an interrupted run continues), other inputs are refused unless --overwrite.
"""
import os
import shutil
import sys

if __name__ == '__main__':  # run as a script: make the project packages importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from scipy.io import loadmat
from tqdm import tqdm

from datasets.io import save_palette_png
from datasets.voc import read_split, resolve_voc_root
from utils.engine.errors import InputError, MissingFile
from utils.engine.files import atomic_open, claim_folder, releases_claims, remove_files
from utils.engine.flags import ScriptParser
from utils.engine.records import Record
from utils.engine.runtime import run_script

# On the real SBD release and VOC 2012.
EXPECTED_TRAIN_AUG = 10582


def sbd_folder(path):
    """The SBD folder holding cls/, train.txt and val.txt: the path itself or benchmark_RELEASE/dataset in it."""
    for candidate in (path, os.path.join(path, 'dataset'), os.path.join(path, 'benchmark_RELEASE', 'dataset')):
        if os.path.isdir(os.path.join(candidate, 'cls')):
            missing = [name for name in ('train.txt', 'val.txt') if not os.path.isfile(os.path.join(candidate, name))]
            if missing:
                raise MissingFile(f'SBD folder {candidate} has cls/ but no {" or ".join(missing)}')
            return candidate
    raise MissingFile(f'no SBD found at {path}: expected cls/ (the .mat segmentations), train.txt and val.txt '
                            'in it or in its dataset/ subfolder')


def read_sbd_segmentation(path):
    """The class-index segmentation (uint8 HxW) of an SBD cls/ID.mat file (struct GTcls, field Segmentation)."""
    try:
        segmentation = loadmat(path, squeeze_me=True, struct_as_record=False)['GTcls'].Segmentation
    except (OSError, ValueError, KeyError, AttributeError, NotImplementedError) as error:
        raise InputError(f'cannot read the SBD segmentation {path}: {type(error).__name__}: {error}') from None
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2 or segmentation.size == 0 or segmentation.max() > 20:
        raise InputError(f'{path}: GTcls.Segmentation is not a map of VOC class indices (shape {segmentation.shape})')
    return segmentation.astype(np.uint8)


def train_aug_ids(sbd, voc):
    """SBD train + SBD val + VOC train, minus VOC val, sorted."""
    segmentation = os.path.join(voc, 'ImageSets', 'Segmentation')
    voc_val = set(read_split(os.path.join(segmentation, 'val.txt')))
    union = set(read_split(os.path.join(sbd, 'train.txt'))) | set(read_split(os.path.join(sbd, 'val.txt'))) \
        | set(read_split(os.path.join(segmentation, 'train.txt')))
    return sorted(union - voc_val)


def copy_atomic(source, destination):
    with open(source, 'rb') as src, atomic_open(destination) as dst:
        shutil.copyfileobj(src, dst)


def make_voc_aug(sbd_root, voc_root, overwrite=False):
    """Write SegmentationClassAug/ and train_aug.txt; returns the train_aug ids."""
    sbd, voc = sbd_folder(sbd_root), resolve_voc_root(voc_root)
    out_dir = os.path.join(voc, 'SegmentationClassAug')
    list_path = os.path.join(voc, 'ImageSets', 'Segmentation', 'train_aug.txt')
    voc_masks = os.path.join(voc, 'SegmentationClass')
    record = Record(os.path.dirname(list_path), {}, {'sbd_cls': os.path.join(sbd, 'cls'), 'voc_masks': voc_masks},
                    name='train_aug_record.json')
    pngs = lambda: [os.path.join(out_dir, n) for n in os.listdir(out_dir) if n.endswith('.png')] \
        if os.path.isdir(out_dir) else []
    ids = train_aug_ids(sbd, voc)
    if record.is_done(lambda summary: len(pngs()) >= summary.get('masks', 0)):
        print(f'{out_dir}: already made from the same SBD and VOC masks')
        return ids
    claim_folder(out_dir)
    record.begin(bool(pngs()), overwrite, what='train_aug masks', clear=lambda: remove_files(pngs() + [record.path]))
    sbd_ids = sorted(name[:-4] for name in os.listdir(os.path.join(sbd, 'cls')) if name.endswith('.mat'))
    voc_ids = sorted(name[:-4] for name in os.listdir(voc_masks) if name.endswith('.png')) \
        if os.path.isdir(voc_masks) else []
    for image_id in tqdm(sbd_ids, desc='SBD cls/*.mat -> SegmentationClassAug', unit='img'):
        path = os.path.join(out_dir, f'{image_id}.png')
        if image_id not in voc_ids and not os.path.exists(path):
            save_palette_png(path, read_sbd_segmentation(os.path.join(sbd, 'cls', f'{image_id}.mat')))
    for image_id in tqdm(voc_ids, desc='VOC SegmentationClass -> SegmentationClassAug', unit='img'):
        copy_atomic(os.path.join(voc_masks, f'{image_id}.png'), os.path.join(out_dir, f'{image_id}.png'))
    without = [image_id for image_id in ids if not os.path.exists(os.path.join(out_dir, f'{image_id}.png'))]
    if without:
        raise InputError(f'{len(without)} train_aug ids have neither an SBD nor a VOC mask, e.g. {without[:5]}')
    with atomic_open(list_path, 'w') as handle:
        handle.write(''.join(f'{image_id}\n' for image_id in ids))
    record.write('done', {'train_aug': len(ids), 'masks': len(set(sbd_ids) | set(voc_ids))})
    print(f'wrote {len(set(sbd_ids) | set(voc_ids))} masks to {out_dir} and {len(ids)} ids to {list_path} '
          f'(the real SBD and VOC 2012 give {EXPECTED_TRAIN_AUG:,})')
    return ids


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--sbd_root', required=True, help='SBD: benchmark_RELEASE/dataset (with cls/, train.txt, '
                        'val.txt), or a folder above it')
    parser.add_argument('--voc_root', required=True, help='VOC2012 folder (VOCdevkit/ or its parent also work)')
    parser.add_argument('--overwrite', action='store_true',
                        help='make the masks again when those present came from other SBD or VOC files')
    return parser


@releases_claims
def main(args):
    make_voc_aug(args.sbd_root, args.voc_root, args.overwrite)


if __name__ == '__main__':
    run_script(main, get_args_parser())
