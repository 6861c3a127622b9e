"""Turn boxes into pseudo masks with a trained LPG generator (or filled boxes, the baseline).

    python genPseudoMasks.py --dataset voc --round 1 --model_path_test LPG_Round1.pth \
        --voc_root_dir VOC2012 --voc_proposals_dir OUT --model_type vgg16
    python genPseudoMasks.py --dataset voc --round 2 --model_path_test LPG_Round2.pth \
        --voc_root_dir VOC2012 --voc_proposals_dir OUT --model_type vgg16 --init_voc_model_path VOC_Round1.pth

Writes `<proposals_dir>/<model_type>_Round<R>/ID.png` (VOC palette); `--method box` writes `<proposals_dir>/box/`.
Images whose PNG already exists are skipped, so an interrupted run continues where it stopped.
"""
import argparse
import os

from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.boxes import BoxImageDataset, coco_box_items, collate_boxes, voc_box_items
from datasets.io import save_palette_png
from datasets.voc import read_split, resolve_voc_root, split_file
from models import LPGNet, build_backbone
from utils.checkpoint import load_weights
from utils.pseudo_masks import filled_box_label, generate_labels
from utils.runtime import add_device_args, run_script, select_device


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', choices=['voc', 'coco'], default='voc')
    parser.add_argument('--round', type=int, default=1, help='LPG round; round >= 2 reads the round R-1 backbone')
    parser.add_argument('--method', choices=['lpg', 'box'], default='lpg',
                        help='lpg: the learned generator; box: filled boxes (baseline)')
    parser.add_argument('--model_path_test', help='LPG checkpoint of this round')
    parser.add_argument('--model_type', choices=['vgg16', 'resnet101'], default='vgg16',
                        help='backbone architecture of the round R-1 segmentation model (and the output folder name)')
    parser.add_argument('--voc_root_dir', help='VOC2012 folder (with JPEGImages/, Annotations/, ImageSets/)')
    parser.add_argument('--voc_proposals_dir', help='output folder for VOC pseudo masks')
    parser.add_argument('--init_voc_model_path', help='round R-1 VOC backbone (21 classes), round >= 2')
    parser.add_argument('--voc_test_size', type=int, default=512, help='images are padded to this size')
    parser.add_argument('--voc_split', default='train_aug', help='split name under ImageSets/Segmentation')
    parser.add_argument('--coco_root_dir', help='COCO folder (with train2017/ and annotations/, after parseCOCO)')
    parser.add_argument('--coco_proposals_dir', help='output folder for COCO-60 pseudo masks')
    parser.add_argument('--init_coco_model_path', help='round R-1 COCO-60 backbone (61 classes), round >= 2')
    parser.add_argument('--coco_test_size', type=int, default=640, help='images are padded to this size')
    parser.add_argument('--coco_split', default='train2017')
    parser.add_argument('--split_file', help='image id list to use instead of the dataset split')
    parser.add_argument('--batch_size', type=int, default=16, help='(image, class) pairs per generator forward')
    add_device_args(parser, workers=2)
    return parser


def build_items(args):
    """(image_id, image_path, boxes) for the chosen dataset, and the output root and backbone settings."""
    if args.dataset == 'voc':
        if not args.voc_root_dir or not args.voc_proposals_dir:
            raise SystemExit('--dataset voc needs --voc_root_dir and --voc_proposals_dir')
        root = resolve_voc_root(args.voc_root_dir)
        ids = read_split(split_file(root, args.voc_split, args.split_file))
        return voc_box_items(root, ids), args.voc_proposals_dir, args.voc_test_size, args.init_voc_model_path, 21
    if not args.coco_root_dir or not args.coco_proposals_dir:
        raise SystemExit('--dataset coco needs --coco_root_dir and --coco_proposals_dir')
    ids = read_split(args.split_file) if args.split_file else None
    items = coco_box_items(args.coco_root_dir, args.coco_split, ids)
    return items, args.coco_proposals_dir, args.coco_test_size, args.init_coco_model_path, 61


def output_folder(args, proposals_dir):
    name = 'box' if args.method == 'box' else f'{args.model_type}_Round{args.round}'
    return os.path.join(proposals_dir, name)


def load_generators(args, backbone_path, num_classes, device):
    """The LPG of this round and, from round 2 on, the round R-1 backbone it reads."""
    if not args.model_path_test:
        raise SystemExit('--model_path_test (the LPG checkpoint) is required with --method lpg')
    in_channels = 4 if args.round == 1 else 5
    lpg = load_weights(LPGNet(in_channels=in_channels), args.model_path_test, what=f'LPGNet(in_channels={in_channels})')
    lpg.to(device).eval()
    backbone = None
    if args.round >= 2:
        if not backbone_path:
            flag = '--init_voc_model_path' if args.dataset == 'voc' else '--init_coco_model_path'
            raise SystemExit(f'round {args.round} reads the round {args.round - 1} backbone: pass {flag}')
        backbone = build_backbone(args.model_type, num_classes)
        load_weights(backbone, backbone_path, what=f'{args.model_type} backbone with {num_classes} classes')
        backbone.to(device).eval()
    return lpg, backbone


def main(args):
    device = select_device(args.cuda)
    items, proposals_dir, test_size, backbone_path, num_classes = build_items(args)
    out_dir = output_folder(args, proposals_dir)
    todo = [item for item in items if not os.path.exists(os.path.join(out_dir, f'{item[0]}.png'))]
    print(f'{len(items)} images, {len(items) - len(todo)} already done, writing to {out_dir}')
    if not todo:
        return out_dir
    if args.method == 'lpg':
        lpg, backbone = load_generators(args, backbone_path, num_classes, device)
    loader = DataLoader(BoxImageDataset(todo, test_size), batch_size=4, num_workers=args.workers,
                        collate_fn=collate_boxes, pin_memory=device.type == 'cuda')
    for samples in tqdm(loader, desc=f'pseudo masks ({args.method})', unit='batch'):
        if args.method == 'box':
            labels = [filled_box_label(sample) for sample in samples]
        else:
            labels = generate_labels(lpg, samples, device, backbone, max_batch=args.batch_size)
        for sample, label in zip(samples, labels):
            save_palette_png(os.path.join(out_dir, f'{sample["image_id"]}.png'), label)
    return out_dir


if __name__ == '__main__':
    run_script(main, get_args_parser())
