"""Evaluation of a segmentation backbone and of pseudo masks: logits over a split (logits), per-image label maps
with and without DenseCRF (predictions), confusion matrices and scores (metric, scores), and figures
(visualize). test.py drives these; they know no dataset format."""
