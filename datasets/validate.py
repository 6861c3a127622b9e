"""Up-front checks of a long job's data: every listed image and label exists, decodes, has the right size
and values, and every box has an area. Run in threads (decoding releases the GIL) with a progress bar, and
reported all at once, so that a bad file stops a 20k-iteration run before it starts, not at a random
iteration hours later."""
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
from tqdm import tqdm

from .constants import IGNORE_LABEL
from .io import ImageFrame, decode_image, read_label


def image_problems(image_path: str, label_path: Optional[str] = None, num_classes: Optional[int] = None,
                   tagged: Optional[list[str]] = None) -> list[str]:
    """What is wrong with an image (and its label map): missing, undecodable, truncated, sizes that differ,
    label values that are no class (0..num_classes-1) and not 255. [] when all is well. tagged: a list that
    collects the image's path when it carries an EXIF orientation tag."""
    label = None
    try:
        if label_path is not None:
            label = read_label(label_path)
        # In the frame of its label: a size that contradicts it is a problem naming both files and sizes.
        decoded = decode_image(image_path, None if label is None else ImageFrame(*label.shape,
                                                                                   f'its label {label_path}'))
    except (OSError, ValueError) as error:
        return [str(error)]
    if tagged is not None and decoded.orientation != 1:
        tagged.append(image_path)  # list.append holds the GIL: safe from the check's threads
    if label is None:
        return []
    problems = []
    if num_classes is not None:
        values = np.unique(label)
        wrong = values[(values >= num_classes) & (values != IGNORE_LABEL)]
        if wrong.size:
            problems.append(f'label {label_path} holds values {wrong[:5].tolist()} that are no class '
                            f'(0..{num_classes - 1}, or {IGNORE_LABEL} = ignore)')
    return problems


def find_problems(keys: Sequence[str], check: Callable[[str], list[str]], what: str, threads: int = 8,
                  progress: bool = True) -> dict[str, list[str]]:
    """{key: [problems]} for the keys whose check(key) is not empty."""
    with ThreadPoolExecutor(threads) as pool:
        results = list(tqdm(pool.map(check, keys), total=len(keys), desc=f'checking {what}', disable=not progress))
    return {key: problems for key, problems in zip(keys, results) if problems}


class UnreadableImage(NamedTuple):
    """What a batch job's dataset returns in place of a sample for an image it cannot use (missing, undecodable,
    or of a size its annotation contradicts): the job goes on without it and records the reason."""
    image_id: str
    error: str
