"""A backbone's evaluation over a split (test.py --type test, crf and predict): its logits of every image, kept in
a folder with their completion record, then the scores of its predictions without and with DenseCRF, or the label
maps of images without ground truth in the layout of the VOC evaluation server. test.py resolves the flags, the
record and the ground truth; these run the work."""
import os
from typing import NamedTuple, Optional

import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm import tqdm

from datasets.segmentation import SegmentationItem
from models.backbones import build_backbone, get_backbone
from utils.engine import layout
from utils.engine.checkpoint import load_weights
from utils.engine.errors import failure_listing
from utils.engine.files import LOCK_NAME, claim_folder, remove_files, write_json
from utils.evaluation.logits import compute_logits
from utils.evaluation.predictions import evaluate_image, predict_image
from utils.evaluation.scores import gathered_scores, print_scores
from utils.evaluation.visualize import write_overlays


class LogitsRun(NamedTuple):
    """Where a --type test / crf / predict run keeps its outputs, the backbone's entry, and the images whose
    logits could not be computed ((image_id, reason))."""
    save_path: str
    logits_dir: str
    gt_dir: Optional[str]
    backbone: object
    unreadable: list


def load_backbone(args, precision, class_names):
    """The backbone of --model_type with the weights of --model_path, ready to test."""
    model = build_backbone(args.model_type, len(class_names))
    load_weights(model, args.model_path, what=f'{args.model_type} backbone ({len(class_names)} classes)')
    return precision.prepare_model(model).eval()


def logits_of_split(args, ctx, precision, model, record, gt_dir, items):
    """The logits of `model` (load_backbone) for every image of the split in the folder of `record` (those
    already there are kept), and their record. gt_dir: the ground truth whose frame the images are read in (None:
    no ground truth)."""
    save_path, logits_dir = os.path.dirname(record.folder), record.folder

    def begin():
        claim_folder(logits_dir)
        old = [os.path.join(logits_dir, name) for name in os.listdir(logits_dir) if name != LOCK_NAME]
        record.begin(bool(old), args.overwrite, what='logits', clear=lambda: remove_files(old + [
            layout.scores_file(save_path, kind) for kind in ('test', 'crf')]))
    ctx.on_main(begin)
    ctx.barrier()
    backbone = get_backbone(args.model_type)
    pad_to = args.test_size if backbone.pad_to_test_size else None
    # Read in the frame of their ground truth where it exists (an EXIF orientation tag may turn an image).
    with_labels = [SegmentationItem(*item, os.path.join(gt_dir, f'{item.image_id}.png')) if gt_dir else item
                   for item in ctx.shard(items)]
    unreadable, oriented = compute_logits(model, with_labels, logits_dir, pad_to, precision, args.batch_size,
                                          args.workers, args.writer_threads, progress=ctx.is_main, scales=args.scales,
                                          flip=args.flip)
    unreadable = [failure for found in ctx.all_gather_objects(unreadable) for failure in found]
    oriented = sum(ctx.all_gather_objects(oriented))
    if oriented:
        ctx.print(f'{oriented} of the images read carry an EXIF orientation tag: each was read in the pixel frame of '
                  'its ground truth (the stored one, or turned where only the turned size matches it)')
    if ctx.is_main:
        record.write('incomplete' if unreadable else 'done', {'images': len(items), 'failed': dict(unreadable)})
    return LogitsRun(save_path, logits_dir, gt_dir, backbone, unreadable)


def score_backbone(args, ctx, run, split, items, class_names, crf_params, crf_on_padded):
    """The predictions (and, given crf_params, their DenseCRF refinement, in parallel) against the ground truth:
    scores without and with CRF, written as scores_<type>.json; a non-zero exit names the images not scored."""
    out_dirs = {kind: layout.eval_subdir(run.save_path, kind) for kind in ('pred', 'crf')}
    per_image = Parallel(n_jobs=args.n_jobs if crf_params else 1)(
        delayed(evaluate_image)(image_id, image_path, run.gt_dir, run.logits_dir, out_dirs, len(class_names),
                                crf_params, crf_on_padded)
        for image_id, image_path in tqdm(ctx.shard(items), desc='CRF' if crf_params else 'scoring',
                                         disable=not ctx.is_main))
    scored = [hists for _, hists in per_image if isinstance(hists, dict)]
    if args.overlays:
        done = {image_id for image_id, hists in per_image if isinstance(hists, dict)}
        write_overlays([item for item in ctx.shard(items) if item.image_id in done],
                       out_dirs['crf' if crf_params else 'pred'],
                       layout.eval_subdir(run.save_path, 'overlays'))
    mine = [(image_id, reason) for image_id, reason in per_image if isinstance(reason, str)]
    failed = {image_id: reason for found in ctx.all_gather_objects(mine) for image_id, reason in found}
    # An image that could not be read has no logits: say why it could not be read.
    failed.update({image_id: f'no logits: {reason}' for image_id, reason in run.unreadable if image_id in failed})
    results = {'model_path': args.model_path, 'model_type': args.model_type, 'split': split, 'num_images': len(items),
               'num_scored': len(items) - len(failed), 'failed': failed}
    confusion = {}
    for key in ['without CRF'] + (['with CRF'] if crf_params else []):
        hist = sum((hists[key] for hists in scored), np.zeros((len(class_names),) * 2, np.int64))
        hist = ctx.all_reduce_sum(torch.from_numpy(hist)).numpy()
        results[key] = gathered_scores(ctx, hist, class_names, reduce=False)
        confusion[key] = hist.tolist()
        if ctx.is_main:
            print_scores(f'{args.model_type} on {split}, {key}', results[key])
    results['confusion'] = confusion
    results['one class everywhere'] = one_class_everywhere(confusion, class_names)
    if ctx.is_main:
        for key, name in results['one class everywhere'].items():
            print(f'warning: the backbone predicts {name} at every pixel of the {split} images ({key}): it learned '
                  'nothing from its training masks')
        out = layout.scores_file(run.save_path, args.type)
        write_json(out, results)
        print(f'\n{len(items)} images: {len(items) - len(failed)} scored, {len(failed)} failed\nwrote {out}')
    if failed:
        raise SystemExit(f'{len(failed)} images could not be scored (the scores cover the others):\n  '
                         f'{failure_listing(failed)}')
    return results


def one_class_everywhere(confusion, class_names):
    """{'without CRF' / 'with CRF': the class name} where a backbone's predictions over the whole split are one
    class (a backbone that learned nothing). The scores of such a backbone are still a result, the comparison's
    worst, so test.py says so and goes on (an empty set of pseudo masks, which nothing later can learn from, stops
    genPseudoMasks.py instead)."""
    found = {}
    for key, hist in confusion.items():
        predicted = np.flatnonzero(np.asarray(hist).sum(axis=0))
        if len(predicted) == 1:
            found[key] = class_names[int(predicted[0])]
    return found


def predict(args, ctx, items, logits_dir, out_dir, crf_params, crf_on_padded):
    """--type predict: a palette PNG per image (with --crf, refined by DenseCRF) in the layout of the VOC
    evaluation server, results/VOC2012/Segmentation/comp6_test_cls/ID.png."""
    failures = Parallel(n_jobs=args.n_jobs if crf_params else 1)(
        delayed(predict_image)(image_id, image_path, logits_dir, out_dir, crf_params, crf_on_padded)
        for image_id, image_path in tqdm(ctx.shard(items), desc='predict', disable=not ctx.is_main))
    failed = {image_id: reason for found in ctx.all_gather_objects([f for f in failures if f])
              for image_id, reason in found}
    ctx.print(f'{len(items)} images: {len(items) - len(failed)} predicted, {len(failed)} failed; wrote {out_dir}')
    if failed:
        raise SystemExit(f'{len(failed)} images could not be predicted:\n  {failure_listing(failed)}')
    return out_dir
