"""The release's module path for the segmentation scores: the code lives in utils/evaluation/metric.py.

Kept so that scripts written against the release's layout (`from utils.metric import scores`) keep working."""
from utils.evaluation.metric import confusion_matrix, scores, scores_from_confusion

__all__ = ['confusion_matrix', 'scores', 'scores_from_confusion']
