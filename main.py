"""Train a DeepLab segmentation backbone on (pseudo) masks.

    python main.py --root_path VOC2012 --label_path_name PSEUDO/vgg16_Round1 --model_type vgg16 \
        --init_model_path PretrainedModel/vgg16_largefov_imagenet.pth --save_path OUT --cuda true
    python main.py --dataset coco --root_path COCO --label_path_name COCO_PSEUDO/vgg16_Round1 ...  # 61 classes

The defaults are the original schedule: VGG16 SGD lr 1e-3, batch 30, 20k iterations, crop 321;
ResNet-101 lr 2.5e-4, batch 2 x 5 accumulated steps, 40k iterations. `<save_path>/checkpoint_last.pth`
holds model, optimizer and iteration (--resume continues from it); `<save_path>/<model_type>_final.pth`
is the plain state dict.
"""
import argparse
import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from datasets.constants import IGNORE_LABEL
from datasets.transforms import ScalePadCropFlip
from datasets.voc import SegmentationDataset, coco_items, read_split, resolve_voc_root, split_file, voc_items
from models import build_backbone
from utils.checkpoint import load_weights, resume_training, save_checkpoint, save_training_state
from utils.runtime import (LossLog, add_device_args, infinite_batches, seed_everything, select_device, set_poly_lr,
                           run_script, worker_init)

# Per model type: base lr, batch size, accumulated steps, iterations (DESIGN section 3).
SCHEDULES = {
    'vgg16': dict(lr=1e-3, batch_size=30, iter_size=1, num_iterations=20000),
    'resnet101': dict(lr=2.5e-4, batch_size=2, iter_size=5, num_iterations=40000),
}


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', choices=['voc', 'coco'], default='voc',
                        help='voc: 21-class VOC backbone; coco: 61-class COCO-60 backbone for the next LPG round')
    parser.add_argument('--root_path', required=True, help='VOC2012 folder, or the COCO folder with --dataset coco')
    parser.add_argument('--label_path_name', default='SegmentationClassAug',
                        help='folder of training masks (pseudo masks), absolute or relative to --root_path')
    parser.add_argument('--model_type', choices=['vgg16', 'resnet101'], default='vgg16')
    parser.add_argument('--init_model_path', help='initial weights (e.g. from utils/imagenet_init.py); '
                        'default: random initialisation')
    parser.add_argument('--save_path', required=True)
    parser.add_argument('--split', default='train_aug', help='VOC split under ImageSets/Segmentation')
    parser.add_argument('--split_file', help='image id list (default: the VOC split; for COCO the masks present)')
    parser.add_argument('--num_iterations', type=int, help='default: 20000 (vgg16), 40000 (resnet101)')
    parser.add_argument('--batch_size', type=int, help='default: 30 (vgg16), 2 (resnet101)')
    parser.add_argument('--iter_size', type=int, help='accumulated steps per update; default 1 (vgg16), 5 (resnet101)')
    parser.add_argument('--lr', type=float, help='base lr; default 1e-3 (vgg16), 2.5e-4 (resnet101)')
    parser.add_argument('--momentum', type=float, default=0.9)
    parser.add_argument('--weight_decay', type=float, default=5e-4)
    parser.add_argument('--crop_size', type=int, default=321)
    parser.add_argument('--num_print_log', type=int, default=20)
    parser.add_argument('--num_save_model', type=int, default=5000)
    parser.add_argument('--resume', action='store_true', help='continue from <save_path>/checkpoint_last.pth')
    add_device_args(parser, workers=4, seed=True)
    return parser


def fill_schedule_defaults(args):
    for key, value in SCHEDULES[args.model_type].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def param_groups(model, model_type, lr, weight_decay):
    """The original learning-rate groups: the classifier learns 10x (weights) / 20x (biases) faster,
    VGG biases 2x; no weight decay on biases. Frozen parameters (ResNet batch norm) are left out."""
    is_classifier = (lambda name: name.startswith('features.38.')) if model_type == 'vgg16' else \
        (lambda name: '.aspp.' in f'.{name}')
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_bias = name.endswith('bias')
        if is_classifier(name):
            key = (20.0, 0.0) if is_bias else (10.0, weight_decay)
        elif is_bias:
            key = (2.0 if model_type == 'vgg16' else 1.0, 0.0)
        else:
            key = (1.0, weight_decay)
        groups.setdefault(key, []).append(param)
    return [dict(params=params, lr=lr * scale, initial_lr=lr * scale, weight_decay=decay)
            for (scale, decay), params in groups.items()]


def build_dataset(args):
    augment = ScalePadCropFlip(args.crop_size, seed=args.seed)
    if args.dataset == 'voc':
        root = resolve_voc_root(args.root_path)
        ids = read_split(split_file(root, args.split, args.split_file))
        return SegmentationDataset(voc_items(root, ids, args.label_path_name), augment=augment)
    label_dir = args.label_path_name if os.path.isabs(args.label_path_name) else \
        os.path.join(args.root_path, args.label_path_name)
    if args.split_file:
        ids = read_split(args.split_file)
    elif os.path.isdir(label_dir):
        ids = sorted(name[:-4] for name in os.listdir(label_dir) if name.endswith('.png'))
    else:
        raise SystemExit(f'label folder {label_dir} does not exist (--label_path_name)')
    return SegmentationDataset(coco_items(args.root_path, ids, label_dir), augment=augment)


def segmentation_loss(outputs, labels):
    """Cross-entropy (255 ignored) against labels resized (nearest) to each output's size, summed over outputs."""
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    loss = 0.0
    for logits in outputs:
        target = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode='nearest')[:, 0].long()
        loss = loss + F.cross_entropy(logits, target, ignore_index=IGNORE_LABEL)
    return loss


def main(args):
    fill_schedule_defaults(args)
    seed_everything(args.seed)
    device = select_device(args.cuda)
    num_classes = 21 if args.dataset == 'voc' else 61
    dataset = build_dataset(args)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        pin_memory=device.type == 'cuda', drop_last=len(dataset) >= args.batch_size,
                        worker_init_fn=worker_init, persistent_workers=args.workers > 0)
    model = build_backbone(args.model_type, num_classes)
    if args.init_model_path:
        load_weights(model, args.init_model_path, what=f'{args.model_type} with {num_classes} classes')
    model.to(device).train()
    optimizer = torch.optim.SGD(param_groups(model, args.model_type, args.lr, args.weight_decay),
                                lr=args.lr, momentum=args.momentum)
    last_path = os.path.join(args.save_path, 'checkpoint_last.pth')
    final_path = os.path.join(args.save_path, f'{args.model_type}_final.pth')
    start = resume_training(last_path, model, optimizer) if args.resume else 0
    print(f'{args.dataset} {args.model_type}: {len(dataset)} images, {args.num_iterations} iterations, '
          f'batch {args.batch_size} x {args.iter_size}')

    batches = infinite_batches(loader)
    log = LossLog(args.num_iterations, args.num_print_log)
    for iteration in range(start, args.num_iterations):
        set_poly_lr(optimizer, iteration, args.num_iterations)
        optimizer.zero_grad(set_to_none=True)
        update_loss = 0.0
        for _ in range(args.iter_size):
            images, labels, _ids = next(batches)
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = segmentation_loss(model(images), labels) / args.iter_size
            loss.backward()
            update_loss = update_loss + loss.detach()
        optimizer.step()
        done = iteration + 1
        log.update(done, update_loss, optimizer)
        if done % args.num_save_model == 0 or done == args.num_iterations:
            save_training_state(last_path, model, optimizer, done, args)
    save_checkpoint(final_path, **model.state_dict())
    print(f'saved {final_path}')
    return final_path


if __name__ == '__main__':
    run_script(main, get_args_parser())
