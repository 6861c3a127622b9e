"""Command line: `python -m datasets.synthetic --out DIR` writes both datasets under DIR."""
import argparse
import json
import os

from . import make_custom_data, make_demo_data


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Generate small synthetic COCO-like and VOC-like datasets.')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--num_coco', type=int, default=400)
    parser.add_argument('--num_voc_train', type=int, default=80)
    parser.add_argument('--num_voc_val', type=int, default=40)
    parser.add_argument('--image_size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--custom', type=int, default=0, metavar='N',
                        help='instead, write two COCO-format sets with categories neither VOC nor COCO has: N images '
                        'with masks in OUT/custom_aux and N in OUT/custom_target (for --dataset custom)')
    return parser


def main(args: argparse.Namespace) -> None:
    if args.custom:
        custom = make_custom_data(args.out, args.custom, args.image_size, args.seed)
        for side, (annotations, image_dir) in custom.items():
            print(f'custom {side}: {annotations} (images in {image_dir})')
        return
    coco_root, voc_root = make_demo_data(args.out, args.num_coco, args.num_voc_train, args.num_voc_val,
                                         args.image_size, args.seed)
    with open(os.path.join(coco_root, 'annotations', 'instances_train2017.json')) as handle:
        num_annotations = len(json.load(handle)['annotations'])
    print(f'COCO-like: {coco_root}  ({args.num_coco} images, {num_annotations} annotations)')
    print(f'VOC-like:  {voc_root}  ({args.num_voc_train} train, {args.num_voc_val} val)')


if __name__ == '__main__':
    main(get_args_parser().parse_args())
