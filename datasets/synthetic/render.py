"""Colours and painting: muted, noisy backgrounds with soft distractor blobs; saturated,
textured objects with a soft-ish but visible edge, in a colour that stands out from what
lies under them; box sampling; image sizes; the per-image random generators.
"""
import cv2
import numpy as np

_JPEG_QUALITY = 95  # both writers save JPEGs at this quality

# What the generators take as image_size: a side (square images) or (height, width).
ImageSize = int | tuple[int, int]


def _hsv_to_bgr(hue, saturation, value):
    hsv = np.array([[[hue % 180, saturation, value]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _lab(bgr):
    pixel = np.clip(np.asarray(bgr, np.float32).reshape(1, 1, 3) / 255.0, 0, 1)
    return cv2.cvtColor(pixel, cv2.COLOR_BGR2Lab)[0, 0]


def _class_hues(num_classes, offset):
    return [offset + index * 180.0 / num_classes for index in range(num_classes)]


def _background(rng, height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    colour_a = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(50, 225))
    colour_b = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(50, 225))
    theta = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(theta) + yy * np.sin(theta)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    image = colour_a + (colour_b - colour_a) * ramp[..., None]
    coarse = rng.normal(0, 16, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3)).astype(np.float32)
    image += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    side = min(height, width)
    for _ in range(int(rng.integers(1, 6))):  # soft distractor blobs: not objects
        blob = np.zeros((height, width), np.float32)
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(4, side // 4 + 5)), int(rng.integers(4, side // 4 + 5)))
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), rng.uniform(2.0, 5.0))[..., None] * rng.uniform(0.4, 0.9)
        colour = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 150), rng.uniform(40, 230))
        image = image * (1 - blob) + colour * blob
    grain = rng.normal(0, rng.uniform(3, 9), size=(height, width, 3)).astype(np.float32)
    return image + cv2.GaussianBlur(grain, (0, 0), 0.8)


def _object_texture(rng, colour, texture_kind, height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    along = (xx * np.cos(theta) + yy * np.sin(theta)) / max(height, width)
    texture = colour * (1 + rng.uniform(-0.2, 0.2) * (along - along.mean()))[..., None]
    if texture_kind == 1:  # stripes
        phi = rng.uniform(0, 2 * np.pi)
        period = rng.uniform(5, 9)
        stripes = np.sin(2 * np.pi * (xx * np.cos(phi) + yy * np.sin(phi)) / period)
        texture = texture + 22 * stripes[..., None]
    elif texture_kind == 2:  # speckles
        speckle = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.2)
        texture = texture + (25 / (speckle.std() + 1e-6)) * speckle[..., None]
    return texture + rng.normal(0, 4, size=(height, width, 3)).astype(np.float32)


def _pick_colour(rng, hue, canvas, mask, min_delta_e=30.0):
    """A saturated colour of the class's hue that stands out from what lies under the mask."""
    under = _lab(canvas[mask.astype(bool)].mean(0))
    best, best_delta = None, -1.0
    for _ in range(12):
        colour = _hsv_to_bgr(hue + rng.uniform(-7, 7), rng.uniform(150, 255), rng.uniform(90, 250))
        delta = float(np.linalg.norm(_lab(colour) - under))
        if delta >= min_delta_e:
            return colour
        if delta > best_delta:
            best, best_delta = colour, delta
    return best


def _paint(rng, canvas, mask, hue, texture_kind):
    height, width = mask.shape
    colour = _pick_colour(rng, hue, canvas, mask)
    texture = _object_texture(rng, colour, texture_kind, height, width)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.7)[..., None]  # soft-ish edge
    canvas *= 1 - alpha
    canvas += alpha * texture


def _to_uint8(canvas):
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def _sample_box(rng, height, width, allow_truncation):
    side = min(height, width)
    min_side = min(24.0, side / 3.0)
    size = rng.uniform(min_side, 0.65 * side)
    aspect = np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    box_w = float(np.clip(size * np.sqrt(aspect), min_side, 0.8 * width))
    box_h = float(np.clip(size / np.sqrt(aspect), min_side, 0.8 * height))
    if allow_truncation and rng.random() < 0.15:
        x0 = rng.uniform(-0.3 * box_w, width - 0.7 * box_w)
        y0 = rng.uniform(-0.3 * box_h, height - 0.7 * box_h)
    else:
        x0 = rng.uniform(1, width - box_w - 1)
        y0 = rng.uniform(1, height - box_h - 1)
    return (x0, y0, box_w, box_h)


def _as_size(image_size):
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    height, width = image_size
    return int(height), int(width)


def _image_rng(seed, side, index):
    return np.random.default_rng([int(seed), side, int(index)])
