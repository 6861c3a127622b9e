r"""Turn boxes into pseudo masks with a trained LPG generator (or filled boxes, the baseline).

    python genPseudoMasks.py --dataset voc --round 1 --model_path_test LPG_Round1.pth \
        --voc_root_dir VOC2012 --voc_proposals_dir OUT --model_type vgg16
    python genPseudoMasks.py --dataset voc --round 2 --model_path_test LPG_Round2.pth \
        --voc_root_dir VOC2012 --voc_proposals_dir OUT --model_type vgg16 --init_voc_model_path VOC_Round1.pth

Writes `<proposals_dir>/<model_type>_Round<R>/ID.png` (VOC palette); `--method box` writes `<proposals_dir>/box/`.
Images whose PNG already exists are skipped, so an interrupted run continues where it stopped.
Every dataset has its own flags: `--<dataset>_root_dir`, `--<dataset>_proposals_dir`,
`--init_<dataset>_model_path`, `--<dataset>_test_size` and `--<dataset>_split`.
"""
import argparse
import os

from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.boxes import BoxImageDataset, collate_boxes, filled_box_label
from datasets.io import BackgroundWriter, save_palette_png
from datasets.registry import DATASETS, get_dataset
from models.backbones import backbone_names, build_backbone
from models.lpg import LPGNet, generate_labels, lpg_in_channels
from utils import layout
from utils.checkpoint import load_weights
from utils.distributed import init_distributed
from utils.precision import Precision, add_amp_arg
from utils.runtime import add_device_args, run_script


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', choices=list(DATASETS), default='voc')
    parser.add_argument('--round', type=int, default=1, help='LPG round; round >= 2 reads the round R-1 backbone')
    parser.add_argument('--method', choices=['lpg', 'box'], default='lpg',
                        help='lpg: the learned generator; box: filled boxes (baseline)')
    parser.add_argument('--model_path_test', help='LPG checkpoint of this round')
    parser.add_argument('--model_type', choices=backbone_names(), default='vgg16',
                        help='backbone architecture of the round R-1 segmentation model (and the output folder name)')
    for spec in DATASETS.values():
        name = spec.name
        parser.add_argument(f'--{name}_root_dir', help=spec.root_help)
        parser.add_argument(f'--{name}_proposals_dir', help=f'output folder for {spec.title} pseudo masks')
        parser.add_argument(f'--init_{name}_model_path',
                            help=f'round R-1 {spec.title} backbone ({spec.num_classes} classes), round >= 2')
        parser.add_argument(f'--{name}_test_size', type=int, default=spec.test_size,
                            help='images are padded (bottom/right) to this size, or to a multiple of 128 above it '
                            '(default %(default)s)')
        parser.add_argument(f'--{name}_split', default=spec.default_split,
                            help=f'{spec.title} split (default %(default)s)')
    parser.add_argument('--split_file', help='image id list to use instead of the dataset split')
    parser.add_argument('--batch_size', type=int, default=16, help='(image, class) pairs per generator forward')
    parser.add_argument('--image_batch_size', type=int, default=8,
                        help='images per loader batch: one backbone forward for all of them; their (image, class) '
                        'pairs fill the generator batches')
    parser.add_argument('--writer_threads', type=int, default=4, help='threads encoding and writing the PNGs')
    add_amp_arg(parser)
    add_device_args(parser, workers=2)
    return parser


def dataset_flags(args):
    """The flags of the chosen dataset: root, output folder, backbone, test size, split."""
    name = args.dataset
    flags = dict(root=getattr(args, f'{name}_root_dir'), proposals_dir=getattr(args, f'{name}_proposals_dir'),
                 backbone_path=getattr(args, f'init_{name}_model_path'), test_size=getattr(args, f'{name}_test_size'),
                 split=getattr(args, f'{name}_split'))
    if not flags['root'] or not flags['proposals_dir']:
        raise SystemExit(f'--dataset {name} needs --{name}_root_dir and --{name}_proposals_dir')
    return flags


def load_generators(args, backbone_path, num_classes, precision):
    """The LPG of this round and, from round 2 on, the round R-1 backbone it reads."""
    if not args.model_path_test:
        raise SystemExit('--model_path_test (the LPG checkpoint) is required with --method lpg')
    in_channels = lpg_in_channels(args.round)
    lpg = load_weights(LPGNet(in_channels=in_channels), args.model_path_test, what=f'LPGNet(in_channels={in_channels})')
    lpg = precision.prepare_model(lpg).eval()
    backbone = None
    if args.round >= 2:
        if not backbone_path:
            raise SystemExit(f'round {args.round} reads the round {args.round - 1} backbone: '
                             f'pass --init_{args.dataset}_model_path')
        backbone = build_backbone(args.model_type, num_classes)
        load_weights(backbone, backbone_path, what=f'{args.model_type} backbone with {num_classes} classes')
        backbone = precision.prepare_model(backbone).eval()
    return lpg, backbone


def main(args):
    ctx = init_distributed(args.cuda)
    precision = Precision(args.amp, ctx.device)
    spec = get_dataset(args.dataset)
    flags = dataset_flags(args)
    items = spec.box_items(flags['root'], flags['split'], args.split_file)
    out_dir = layout.pseudo_mask_dir(flags['proposals_dir'], args.method, args.model_type, args.round)
    # Each process takes its shard first and then skips what exists, so no process sees another's new files.
    todo = [item for item in ctx.shard(items) if not os.path.exists(os.path.join(out_dir, f'{item[0]}.png'))]
    remaining = sum(ctx.all_gather_objects(len(todo)))
    ctx.print(f'{len(items)} images, {len(items) - remaining} already done, writing to {out_dir}'
              + (f' ({ctx.world_size} processes)' if ctx.distributed else ''))
    if todo:
        generate(args, ctx, precision, spec, flags, todo, out_dir)
    ctx.barrier()
    return out_dir


def generate(args, ctx, precision, spec, flags, todo, out_dir):
    """Pseudo masks of this process's images: loader workers read and pad, the device generates a batch of
    images at a time, writer threads encode and write the PNGs."""
    if args.method == 'lpg':
        lpg, backbone = load_generators(args, flags['backbone_path'], spec.num_classes, precision)
    loader = DataLoader(BoxImageDataset(todo, flags['test_size']), batch_size=args.image_batch_size,
                        num_workers=args.workers, collate_fn=collate_boxes, pin_memory=ctx.device.type == 'cuda')
    with BackgroundWriter(args.writer_threads) as writer:
        for samples in tqdm(loader, desc=f'pseudo masks ({args.method})', unit='batch', disable=not ctx.is_main):
            if args.method == 'box':
                labels = [filled_box_label(sample) for sample in samples]
            else:
                labels = generate_labels(lpg, samples, ctx.device, backbone, max_batch=args.batch_size,
                                         precision=precision)
            for sample, label in zip(samples, labels):
                writer.submit(save_palette_png, os.path.join(out_dir, f'{sample["image_id"]}.png'), label)


if __name__ == '__main__':
    run_script(main, get_args_parser())
