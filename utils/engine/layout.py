"""Where every step writes its outputs: the one place that names them.

    trainLPG.py        <model_save_path>/Round_<R>/LPG_Round<R>.pth         the generator (plain state dict,
                                                                            like the released files)
                       <model_save_path>/Round_<R>/LPG_Round<R>_iter<N>.pth  periodic snapshots
                       <model_save_path>/Round_<R>/checkpoint_last.pth       what --resume continues from
    genPseudoMasks.py  <proposals_dir>/<model_type>_Round<R>/ID.png         LPG pseudo masks (VOC palette)
                       <proposals_dir>/box/ID.png                           the filled-box baseline
    main.py            <save_path>/<model_type>_final.pth                   the backbone (plain state dict)
                       <save_path>/<model_type>_iter<N>.pth                 periodic snapshots
                       <save_path>/checkpoint_last.pth                      what --resume continues from
    every step         <its output folder>/record.json                      what the outputs were made from
                                                                            (utils/engine/records.py), written last
    test.py            <model dir>/eval_<split>/{logits,pred,crf}/          per image: logits .npz, PNGs
                       <model dir>/eval_<split>/scores_<type>.json          scores of --type test / crf
                       <pred_dir>/../scores_masks_<pred_dir name>.json      scores of --type masks
                       ./.lpg/last_test_<model_type>.json                   the last --type test run started in
                                                                            the working directory
    run_rounds.py      <work_dir>/ as `RunLayout` says
    utils/parseCOCO.py <dataRoot>/annotations/coco_<split>_bbox_annos.json, <split>_bbox60/, <split>_seg60/
                       (the COCO-60 format itself, defined in datasets.coco)
"""
import os
import re

LAST_CHECKPOINT = 'checkpoint_last.pth'


def last_checkpoint(folder):
    """The training state (model, optimizer, iteration) a run saves and `--resume` reads."""
    return os.path.join(folder, LAST_CHECKPOINT)


def loss_log(run_folder):
    """Every training run's log (iteration, loss, lr, seconds) beside its checkpoints, and its curve."""
    return os.path.join(run_folder, 'loss_log.csv')


def loss_curve(run_folder):
    return os.path.join(run_folder, 'loss_curve.png')


def lpg_dir(model_save_path, round_):
    return os.path.join(model_save_path, f'Round_{round_}')


def lpg_weights(model_save_path, round_):
    """The round's generator, in the format of the released LPG_Round<R>.pth."""
    return os.path.join(lpg_dir(model_save_path, round_), f'LPG_Round{round_}.pth')


def lpg_snapshot(model_save_path, round_, iteration):
    return os.path.join(lpg_dir(model_save_path, round_), f'LPG_Round{round_}_iter{iteration}.pth')


def auxiliary_labels(model_save_path):
    """trainLPG.py --dataset custom: the labels of the auxiliary set, shared by the rounds."""
    return os.path.join(model_save_path, 'auxiliary_labels')


def lpg_snapshot_pattern(round_):
    """The names of lpg_snapshot files, the iteration as group 1."""
    return rf'LPG_Round{round_}_iter(\d+)\.pth'


def backbone_weights(save_path, model_type):
    return os.path.join(save_path, f'{model_type}_final.pth')


def backbone_snapshot(save_path, model_type, iteration):
    return os.path.join(save_path, f'{model_type}_iter{iteration}.pth')


def backbone_snapshot_pattern(model_type):
    return rf'{re.escape(model_type)}_iter(\d+)\.pth'


def eval_dir(model_path, split):
    """test.py's default output folder: beside the evaluated checkpoint."""
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), f'eval_{split}')


def eval_subdir(eval_folder, kind):
    """`logits` (raw network outputs), `pred` (argmax PNGs), `crf` (DenseCRF PNGs) or `overlays`."""
    return os.path.join(eval_folder, kind)


def server_results(eval_folder):
    """test.py --type predict: the layout the PASCAL VOC evaluation server expects."""
    return os.path.join(eval_folder, 'results', 'VOC2012', 'Segmentation', 'comp6_test_cls')


def scores_file(eval_folder, test_type):
    return os.path.join(eval_folder, f'scores_{test_type}.json')


def last_test_record(model_type):
    """The record `test.py --type test` leaves in the working directory, so that the release's second command,
    `test.py --type crf` without --model_path, finds the model and its logits."""
    return os.path.join(os.getcwd(), '.lpg', f'last_test_{model_type}.json')


def mask_scores_file(save_dir, pred_dir):
    return os.path.join(save_dir, f'scores_masks_{os.path.basename(os.path.normpath(pred_dir))}.json')


class RunLayout:
    """The work folder of run_rounds.py (and the demo):

        lpg/Round_<R>/LPG_Round<R>.pth                 trainLPG.py --model_save_path lpg
        lpg_uniform/Round_<R>/LPG_Round<R>.pth         the same with --seg_probs uniform (the ablation)
        pseudo_<dataset>/<model_type>_Round<R>/, box/  genPseudoMasks.py (dataset voc or coco)
        pseudo_<dataset>/scores_masks_*.json           test.py --type masks
        backbone_<dataset>/Round_<R>/<model_type>_final.pth, eval_<split>/   main.py, test.py
        backbone_voc/<masks>/...                        a VOC backbone on other masks: a baseline's (box,
                                                        grabcut, crf) or the ground truth (ground_truth)
        logs/<step>.log                                 each step's output
        summary.json
    """

    def __init__(self, work_dir):
        self.work_dir = os.path.abspath(work_dir)

    def lpg_root(self, seg_probs='backbone'):
        """The generators' --model_save_path: `lpg`, or `lpg_uniform` for those that read uniform probabilities."""
        return os.path.join(self.work_dir, 'lpg' if seg_probs == 'backbone' else f'lpg_{seg_probs}')

    def lpg(self, round_, seg_probs='backbone'):
        return lpg_weights(self.lpg_root(seg_probs), round_)

    def pseudo_root(self, dataset):
        return os.path.join(self.work_dir, f'pseudo_{dataset}')

    def mask_scores(self, dataset, masks):
        """The scores of the pseudo masks in folder `masks` (under pseudo_root(dataset); each method names its
        folder: utils.pseudo_masks.methods)."""
        return mask_scores_file(self.pseudo_root(dataset), masks)

    def backbone_dir(self, dataset, round_):
        """`Round_<R>` for the backbone of round R (an int), the masks' name for any other backbone (a str: a
        baseline's method, or `ground_truth`)."""
        return os.path.join(self.work_dir, f'backbone_{dataset}',
                            f'Round_{round_}' if isinstance(round_, int) else round_)

    def backbone(self, dataset, model_type, round_):
        return backbone_weights(self.backbone_dir(dataset, round_), model_type)

    def backbone_eval(self, dataset, model_type, round_, split):
        return eval_dir(self.backbone(dataset, model_type, round_), split)

    @property
    def summary(self):
        return os.path.join(self.work_dir, 'summary.json')

    def step_log(self, step_name):
        """The output of one step, e.g. logs/round_1_train_LPG.log."""
        slug = re.sub(r'[^A-Za-z0-9]+', '_', step_name).strip('_')
        return os.path.join(self.work_dir, 'logs', f'{slug}.log')
