"""Evaluation of a segmentation backbone and of pseudo masks: logits over a split (logits), per-image label maps
with and without DenseCRF (predictions), confusion matrices and scores (metric, scores), and figures
(visualize); the runs that test.py drives with them: a backbone's logits, scores and server predictions
(backbone_eval) and the pseudo-mask report (mask_report). They know no dataset format."""
