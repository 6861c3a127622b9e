"""Which steps a round of the LPG alternation runs (run_rounds.py): train the round's generator, make and score its
VOC pseudo masks, train and test the VOC backbone on them and, unless the round is the last, make the COCO-60
pseudo masks and train the COCO-60 backbone that the next round reads; the baselines' masks, the backbones trained on
them and on the ground truth, and the uniform-probability ablation. Each step's argv comes from its script's own
command_line, which utils/step_runner.py calls: the steps are given as {flag dest: value} settings, so this
module imports no script."""
from utils.engine import layout
from utils.pseudo_masks.methods import LPG


def for_round(values, r):
    return None if values is None else values[min(r, len(values)) - 1]


def train_lpg(runner, run, r, seg_probs='backbone'):
    """Train the round-r generator; a round >= 2 starts from the round r-1 generator of its own kind and reads the
    round r-1 COCO-60 backbone (or, with seg_probs 'uniform', uniform probabilities in its place)."""
    a = runner.args
    iterations = for_round(a.lpg_iterations, r)
    # Snapshots about every tenth of the run, so that a killed round loses little (the script's default
    # is every 5000 of 100k iterations).
    settings = dict(coco_root_dir=a.coco_root_dir, round=r, model_save_path=run.lpg_root(seg_probs), resume=True,
                    batch_size=a.lpg_batch_size, crop_size=a.lpg_crop_size, lr=for_round(a.lpg_lr, r),
                    box_loss_weight=for_round(a.lpg_box_loss_weight, r), warmup_iterations=a.lpg_warmup_iterations,
                    num_max_iterations=iterations,
                    num_save_model=None if iterations is None else max(1, iterations // 10))
    if r >= 2:
        # Round 1 reads no probabilities: both kinds of round 2 start from the same round-1 generator.
        settings.update(init_lpg_model_path=run.lpg(r - 1, seg_probs if r > 2 else 'backbone'))
        settings.update(dict(seg_probs='uniform') if seg_probs == 'uniform' else
                        dict(init_seg_model_path=run.backbone('coco', a.coco_model_type, r - 1),
                             seg_model_type=a.coco_model_type))
    runner.step(f'round {r}: train LPG{ablation_suffix(seg_probs)}', 'trainLPG.py',
                dict(**settings, **runner.training(), **runner.common()))


def ablation_suffix(seg_probs):
    return '' if seg_probs == 'backbone' else f', {seg_probs} probabilities'


def voc_pseudo_masks(runner, run, r, seg_probs='backbone'):
    """The round-r generator's VOC pseudo masks, scored when --score_masks. Returns (folder, score file or None)."""
    a = runner.args
    settings = dict(dataset='voc', round=r, model_path_test=run.lpg(r, seg_probs), voc_root_dir=a.voc_root_dir,
                    voc_proposals_dir=run.pseudo_root('voc'), model_type=a.model_type, voc_split=a.voc_split,
                    voc_test_size=a.voc_test_size)
    if r >= 2:
        settings.update(dict(seg_probs='uniform') if seg_probs == 'uniform' else
                        dict(init_voc_model_path=run.backbone('voc', a.model_type, r - 1)))
    suffix = ablation_suffix(seg_probs)
    runner.step(f'round {r}: VOC pseudo masks{suffix}', 'genPseudoMasks.py',
                dict(**settings, **runner.generation(), **runner.common()))
    masks = LPG.folder(run.pseudo_root('voc'), a.model_type, r, seg_probs=seg_probs)
    if not a.score_masks:
        return masks, None
    score_step(runner, run, f'round {r}: score VOC pseudo masks{suffix}', masks)
    return masks, run.mask_scores('voc', masks)


def score_step(runner, run, name, masks):
    """test.py --type masks: a set of VOC pseudo masks against SegmentationClassAug."""
    a = runner.args
    runner.step(name, 'test.py', dict(type='masks', root_path=a.voc_root_dir, pred_dir=[masks],
                                                   split=a.voc_split, save_path=run.pseudo_root('voc')))


def voc_backbone(runner, run, key, labels, title):
    """Train the VOC backbone `key` (a round number, or the name of its masks) on the masks in `labels`, then test
    it on the val split without and with CRF. Returns the score file (both results)."""
    a = runner.args
    runner.step(f'{title}: train VOC backbone', 'main.py', dict(
        dataset='voc', root_path=a.voc_root_dir, label_path_name=labels, model_type=a.model_type,
        save_path=run.backbone_dir('voc', key), split=a.voc_split, resume=True, init_model_path=a.voc_imagenet_init,
        **backbone_schedule(a), **runner.scratch(a.voc_imagenet_init), **runner.training(), **runner.common()))
    eval_dir = run.backbone_eval('voc', a.model_type, key, a.val_split)
    runner.step(f'{title}: test VOC backbone + CRF', 'test.py', dict(
        type='crf', root_path=a.voc_root_dir, model_type=a.model_type,
        model_path=run.backbone('voc', a.model_type, key), split=a.val_split, save_path=eval_dir, n_jobs=a.n_jobs,
        test_size=a.eval_test_size, cuda=a.cuda, amp=a.amp))
    return layout.scores_file(eval_dir, 'crf')


def backbone_schedule(a):
    """The backbone settings that run_rounds.py sets (unset ones keep main.py's defaults)."""
    return dict(num_iterations=a.backbone_iterations, batch_size=a.backbone_batch_size,
                crop_size=a.backbone_crop_size, lr=a.backbone_lr, warmup_iterations=a.backbone_warmup_iterations)


def run_round(runner, r, run, last_round):
    a = runner.args
    cmt = a.coco_model_type
    train_lpg(runner, run, r)
    voc_masks, score_path = voc_pseudo_masks(runner, run, r)
    result = {} if score_path is None else {'pseudo_mask_scores': score_path}
    if r >= 2 and a.uniform_ablation:
        train_lpg(runner, run, r, 'uniform')
        _, uniform_scores = voc_pseudo_masks(runner, run, r, 'uniform')
        if uniform_scores:
            result['uniform_pseudo_mask_scores'] = uniform_scores
    result['backbone_scores'] = voc_backbone(runner, run, r, voc_masks, f'round {r}')

    if not last_round:
        runner.step(f'round {r}: COCO-60 pseudo masks', 'genPseudoMasks.py', dict(
            dataset='coco', round=r, model_path_test=run.lpg(r), coco_root_dir=a.coco_root_dir,
            coco_proposals_dir=run.pseudo_root('coco'), model_type=cmt, coco_test_size=a.coco_test_size,
            init_coco_model_path=run.backbone('coco', cmt, r - 1) if r >= 2 else None, **runner.generation(),
            **runner.common()))
        runner.step(f'round {r}: train COCO-60 backbone', 'main.py', dict(
            dataset='coco', root_path=a.coco_root_dir, label_path_name=LPG.folder(run.pseudo_root('coco'), cmt, r),
            model_type=cmt, save_path=run.backbone_dir('coco', r), resume=True, init_model_path=a.coco_imagenet_init,
            **backbone_schedule(a), **runner.scratch(a.coco_imagenet_init), **runner.training(),
            **runner.common()))
    return result


def run_baseline(runner, run, method):
    """A baseline's VOC pseudo masks (a MethodSpec of utils.pseudo_masks.methods): what LPG has to beat. Returns
    its score file."""
    a = runner.args
    runner.step(f'baseline: {method.name} masks', 'genPseudoMasks.py', dict(
        dataset='voc', method=method.name, voc_root_dir=a.voc_root_dir, voc_proposals_dir=run.pseudo_root('voc'),
        voc_split=a.voc_split, n_jobs=a.n_jobs, voc_test_size=a.voc_test_size, **method.settings(a),
        **runner.generation(), **runner.common()))
    masks = method.folder(run.pseudo_root('voc'))
    if a.score_masks:
        score_step(runner, run, f'baseline: score {method.name} masks', masks)
    return run.mask_scores('voc', masks)
