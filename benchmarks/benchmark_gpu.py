"""GPU timings of the LPG steps at the original settings, on random tensors (no data needed).

    python benchmarks/benchmark_gpu.py --out benchmarks/gpu_results.json

Measures, each after warm-up and with CUDA synchronisation:
- LPG training iteration (batch 32, crop 512), round 1 (4 channels) and round 2 (5 channels + the 61-class
  VGG16 backbone forward), fp32 as the scripts run it, and under bf16 autocast for comparison;
- pseudo-mask generation for VOC-sized images (padded to 512, 3 classes each): the original's per-class
  batch-1 loop against this project's one forward for all classes of an image (`models.lpg`);
- backbone training iterations (VGG16 batch 30 crop 321; ResNet-101 batch 2 x 5 accumulated) and the
  VGG16 test forward at 513.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from models import DeepLabLargeFOV, DeepLabV2ResNet101, LPGNet  # noqa: E402
from datasets.boxes import compose_label  # noqa: E402
from models.lpg import backbone_probs, class_channel, generate_labels, lpg_input  # noqa: E402


def timed(fn, repeats, warmup=3):
    """Mean seconds per call of fn() and the peak CUDA memory (GiB) it reached."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - tic) / repeats, torch.cuda.max_memory_allocated() / 2 ** 30


def lpg_train_step(lpg, optimizer, backbone, batch, dtype):
    images, box_masks, targets, class_ids = batch
    with torch.autocast('cuda', dtype=torch.bfloat16, enabled=dtype == 'bf16'):
        seg_probs = None
        if backbone is not None:
            with torch.no_grad():
                seg_probs = class_channel(backbone_probs(backbone, images), class_ids)
        loss = F.cross_entropy(lpg(lpg_input(images, box_masks, seg_probs)).float(), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def bench_lpg_training(device, results, repeats):
    batch_size, crop = 32, 512
    batch = (torch.randn(batch_size, 3, crop, crop, device=device) * 50,
             (torch.rand(batch_size, 1, crop, crop, device=device) > 0.5).float(),
             torch.randint(0, 2, (batch_size, crop // 4, crop // 4), device=device),
             torch.randint(1, 61, (batch_size,), device=device))
    backbone = DeepLabLargeFOV(num_classes=61).to(device).eval()
    for round_, dtype in ((1, 'fp32'), (1, 'bf16'), (2, 'fp32'), (2, 'bf16')):
        lpg = LPGNet(in_channels=4 if round_ == 1 else 5).to(device).train()
        optimizer = torch.optim.Adam(lpg.parameters(), lr=1e-4, weight_decay=5e-4)
        seconds, memory = timed(lambda: lpg_train_step(lpg, optimizer, backbone if round_ == 2 else None, batch,
                                                       dtype), repeats)
        results[f'LPG round {round_} training iteration, batch 32 crop 512, {dtype}'] = {
            'ms': round(1000 * seconds, 1), 'images/s': round(batch_size / seconds, 1), 'peak GiB': round(memory, 2)}


def sample(device, classes=3, size=512):
    """A VOC-like sample as datasets.boxes.BoxImageDataset returns it (500x375 image padded to 512)."""
    masks = torch.zeros(classes, size, size)
    for k in range(classes):
        masks[k, 40 * k:200 + 40 * k, 30 + 50 * k:260 + 50 * k] = 1
    return dict(image=torch.randn(3, size, size) * 50, box_masks=masks, class_ids=torch.arange(1, classes + 1),
                height=375, width=500, image_id=f'x{classes}')


@torch.no_grad()
def per_class_batch1(lpg, samples, device, backbone=None):
    """The original's loop: one generator forward per (image, class), batch 1."""
    labels = []
    for s in samples:
        image = s['image'].to(device)[None]
        probs = backbone_probs(backbone, image) if backbone is not None else None
        foreground = []
        for k, class_id in enumerate(s['class_ids'].tolist()):
            box = s['box_masks'][k].to(device)[None, None]
            seg = probs[:, class_id:class_id + 1] if probs is not None else None
            logits = F.interpolate(lpg(lpg_input(image, box, seg)), size=image.shape[-2:], mode='bilinear',
                                   align_corners=True)
            foreground.append(logits.argmax(1)[0] == 1)
        label = compose_label(torch.stack(foreground), s['box_masks'].to(device) > 0.5, s['class_ids'].tolist())
        labels.append(label[:s['height'], :s['width']].cpu().numpy())
    return labels


def bench_generation(device, results, repeats):
    samples = [sample(device) for _ in range(16)]
    backbone = DeepLabLargeFOV(num_classes=21).to(device).eval()
    for round_ in (1, 2):
        lpg = LPGNet(in_channels=4 if round_ == 1 else 5).to(device).eval()
        bb = backbone if round_ == 2 else None
        loop, _ = timed(lambda: per_class_batch1(lpg, samples, device, bb), repeats, warmup=1)
        batched, memory = timed(lambda: generate_labels(lpg, samples, device, bb), repeats, warmup=1)
        pairs = zip(per_class_batch1(lpg, samples, device, bb), generate_labels(lpg, samples, device, bb))
        agreement = sum(float((a == b).sum()) for a, b in pairs) / sum(375 * 500 for _ in samples)
        results[f'pseudo masks round {round_}, 512 padded, 3 classes/image'] = {
            'per-class batch-1 loop images/s': round(len(samples) / loop, 1),
            'classes batched images/s': round(len(samples) / batched, 1),
            'speed-up': round(loop / batched, 2), 'pixels labelled alike': round(agreement, 6),
            'peak GiB': round(memory, 2)}


def bench_backbones(device, results, repeats):
    vgg = DeepLabLargeFOV(num_classes=21).to(device).train()
    opt = torch.optim.SGD(vgg.parameters(), lr=1e-3, momentum=0.9)
    images, labels = torch.randn(30, 3, 321, 321, device=device), torch.randint(0, 21, (30, 41, 41), device=device)

    def vgg_step():
        loss = F.cross_entropy(vgg(images), labels, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds, memory = timed(vgg_step, repeats)
    results['VGG16 training iteration, batch 30 crop 321, fp32'] = {'ms': round(1000 * seconds, 1),
                                                                    'peak GiB': round(memory, 2)}
    resnet = DeepLabV2ResNet101(num_classes=21).to(device).train()
    opt = torch.optim.SGD([p for p in resnet.parameters() if p.requires_grad], lr=2.5e-4, momentum=0.9)
    images, labels = torch.randn(2, 3, 321, 321, device=device), torch.randint(0, 21, (2, 321, 321), device=device)

    def resnet_update():
        opt.zero_grad(set_to_none=True)
        for _ in range(5):
            loss = sum(F.cross_entropy(out, F.interpolate(labels[:, None].float(), size=out.shape[-2:],
                                                          mode='nearest')[:, 0].long()) for out in resnet(images))
            (loss / 5).backward()
        opt.step()
    seconds, memory = timed(resnet_update, max(repeats // 2, 2))
    results['ResNet-101 update, batch 2 x 5 accumulated, crop 321, fp32'] = {'ms': round(1000 * seconds, 1),
                                                                            'peak GiB': round(memory, 2)}
    vgg.eval()
    image = torch.randn(1, 3, 513, 513, device=device)
    with torch.no_grad():
        seconds, _ = timed(lambda: vgg(image), repeats * 4)
    results['VGG16 test forward, 513x513'] = {'ms': round(1000 * seconds, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='benchmarks/gpu_results.json')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--no_tf32', action='store_true', help='full fp32 convolutions (cuDNN TF32 off)')
    parser.add_argument('--only', choices=['lpg_training', 'generation', 'backbones'], help='run one part')
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit('this benchmark needs a CUDA device')
    device = torch.device('cuda')
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = not args.no_tf32
    results = {'device': torch.cuda.get_device_name(0), 'torch': torch.__version__,
               'cudnn TF32': torch.backends.cudnn.allow_tf32}
    benches = {'lpg_training': bench_lpg_training, 'generation': bench_generation, 'backbones': bench_backbones}
    for name, bench in benches.items():
        if args.only and name != args.only:
            continue
        bench(device, results, args.repeats)
    print(json.dumps(results, indent=1), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as handle:
        json.dump(results, handle, indent=2)


if __name__ == '__main__':
    main()
