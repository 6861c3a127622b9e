"""The pseudo-mask quality report (test.py --type masks): folders of pseudo masks scored side by side against the
same ground truth, in one table, with the completion record that says what the report was computed from."""
import os

import torch
from tqdm import tqdm

from utils.engine import layout
from utils.engine.files import atomic_open, write_json
from utils.engine.records import Record
from utils.evaluation.scores import box_foreground_scores, gathered_scores, report_table, score_masks


def masks_save_path(args):
    """Where the report goes: --save_path, or the folder above the first --pred_dir."""
    return args.save_path or os.path.dirname(os.path.abspath(args.pred_dir[0]))


def masks_record(args, spec, source, split, gt_dir):
    """The record of a --type masks report: the masks, ground truth and split it was computed from."""
    inputs = {f'pred_dir {d}': d for d in args.pred_dir}
    inputs.update(gt_dir=gt_dir, **spec.box_inputs(source, split, args.split_file))
    return Record(masks_save_path(args), {'split': split}, inputs, name=f'{report_stem(args)}_record.json')


def report_names(pred_dirs):
    """The folders' names, or their paths where two share a name."""
    names = [os.path.basename(os.path.normpath(d)) for d in pred_dirs]
    return [d if names.count(n) > 1 else n for d, n in zip(pred_dirs, names)]


def report_stem(args):
    return args.report or 'masks_report_' + '+'.join(os.path.basename(os.path.normpath(d)) for d in args.pred_dir)


def score_pseudo_masks(args, ctx, record, spec, source, split, items, class_names, gt_dir):
    """--type masks: each folder of --pred_dir against the ground truth in gt_dir, in one table (mIoU, class IoU,
    pixel accuracy, precision and recall of the foreground inside the boxes). Writes scores_masks_<folder>.json per
    folder and the report as <report>.json (with the confusion matrices) and <report>.md; record: masks_record's,
    written last."""
    box_failures = []
    boxes = {item.image_id: item.boxes for item in
             spec.box_items(source, split, args.split_file, errors=box_failures)}
    mine = [(image_id, boxes.get(image_id, [])) for image_id, _ in ctx.shard(items)]
    rows, results = {}, {'split': split, 'num_images': len(items), 'gt_dir': gt_dir, 'methods': {}}
    for pred_dir, name in zip(args.pred_dir, report_names(args.pred_dir)):
        hist, inside = score_masks(pred_dir, gt_dir, tqdm(mine, desc=f'scoring {name}', disable=not ctx.is_main),
                                   len(class_names))
        hist = ctx.all_reduce_sum(torch.from_numpy(hist)).numpy()
        rows[name] = gathered_scores(ctx, hist, class_names)
        rows[name]['box foreground'] = box_foreground_scores(ctx.all_reduce_sum(torch.from_numpy(inside)))
        results['methods'][name] = dict(rows[name], pred_dir=pred_dir, confusion=hist.tolist())
        if ctx.is_main:
            write_json(layout.mask_scores_file(record.folder, pred_dir),
                       {'pseudo masks': rows[name], 'pred_dir': pred_dir, 'num_images': len(items),
                        'confusion': hist.tolist()})
    if ctx.is_main:
        table = report_table(rows, class_names)
        print(f'\npseudo masks vs {gt_dir} ({len(items)} images of {split})\n\n{table}')
        stem = os.path.join(record.folder, report_stem(args))
        write_json(f'{stem}.json', results)
        with atomic_open(f'{stem}.md', 'w') as handle:
            handle.write(table)
        record.write('done', {'images': len(items)})
        print(f'wrote {stem}.json and {stem}.md')
    return results
