"""Segmentation scores computed from one confusion matrix, as in the original release."""
import numpy as np


def confusion_matrix(label_true, label_pred, n_class):
    """n_class x n_class counts (rows: ground truth, columns: prediction); labels outside 0..n_class-1
    (255) are ignored."""
    label_true = np.asarray(label_true).ravel().astype(np.int64)
    label_pred = np.asarray(label_pred).ravel().astype(np.int64)
    valid = (label_true >= 0) & (label_true < n_class)
    return np.bincount(n_class * label_true[valid] + label_pred[valid],
                       minlength=n_class ** 2).reshape(n_class, n_class)


def scores_from_confusion(hist):
    """Pixel Accuracy, Mean Accuracy, Frequency Weighted IoU, Mean IoU and Class IoU of a confusion matrix.

    Mean IoU averages only the classes that occur in the ground truth; a class that never occurs has IoU nan
    in Class IoU, as in the original.
    """
    hist = np.asarray(hist, dtype=np.float64)
    tp = np.diag(hist)
    gt_count = hist.sum(axis=1)
    with np.errstate(divide='ignore', invalid='ignore'):
        pixel_acc = tp.sum() / hist.sum()
        mean_acc = np.nanmean(tp / gt_count)
        iou = tp / (gt_count + hist.sum(axis=0) - tp)
        mean_iou = np.nanmean(iou[gt_count > 0])
        freq = gt_count / hist.sum()
        fw_iou = (freq[freq > 0] * iou[freq > 0]).sum()
    return {
        'Pixel Accuracy': pixel_acc,
        'Mean Accuracy': mean_acc,
        'Frequency Weighted IoU': fw_iou,
        'Mean IoU': mean_iou,
        'Class IoU': dict(zip(range(len(iou)), iou)),
    }


def scores(label_trues, label_preds, n_class):
    """Scores over pairs of (ground truth, prediction) label maps; 255 in the ground truth is ignored."""
    hist = np.zeros((n_class, n_class), dtype=np.int64)
    for label_true, label_pred in zip(label_trues, label_preds):
        hist += confusion_matrix(label_true, label_pred, n_class)
    return scores_from_confusion(hist)
