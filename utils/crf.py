"""Fully connected CRF post-processing (pydensecrf); the per-backbone parameters are in models.backbones."""
import numpy as np

try:
    import pydensecrf.densecrf as dcrf
    import pydensecrf.utils as crf_utils
except ImportError:  # only CRF needs it: `test.py --type test` and pseudo-mask generation run without it
    dcrf = crf_utils = None


class DenseCRF:
    """`DenseCRF(...)(image_uint8_hwc, prob_chw)` returns the refined (C, H, W) probabilities.

    Unary = -log(softmax); a Gaussian smoothness kernel and a bilateral appearance kernel on the image.
    """

    def __init__(self, iter_max, pos_w, pos_xy_std, bi_w, bi_xy_std, bi_rgb_std):
        if dcrf is None:
            raise ImportError('DenseCRF needs the pydensecrf module: pip install pydensecrf2')
        self.iter_max = iter_max
        self.pos_w = pos_w
        self.pos_xy_std = pos_xy_std
        self.bi_w = bi_w
        self.bi_xy_std = bi_xy_std
        self.bi_rgb_std = bi_rgb_std

    def __call__(self, image, prob):
        n_class, height, width = prob.shape
        if image.shape[:2] != (height, width):
            raise ValueError(f'DenseCRF: image {image.shape[:2]} and probabilities {(height, width)} differ in size')
        crf = dcrf.DenseCRF2D(width, height, n_class)
        crf.setUnaryEnergy(np.ascontiguousarray(crf_utils.unary_from_softmax(prob)))
        crf.addPairwiseGaussian(sxy=self.pos_xy_std, compat=self.pos_w)
        crf.addPairwiseBilateral(sxy=self.bi_xy_std, srgb=self.bi_rgb_std,
                                 rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=self.bi_w)
        refined = crf.inference(self.iter_max)
        return np.array(refined, dtype=np.float32).reshape(n_class, height, width)
