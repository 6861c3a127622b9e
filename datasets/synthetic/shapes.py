"""Object shapes: shape families drawn in a unit frame, placed to span a box exactly,
rasterised (cv2 for painting, pycocotools for what COCO.annToMask gives) and cut into
exact convex pieces (an occluded convex polygon minus its occluder).

COCO-side families are convex-ish (ellipses, rotated rectangles, triangles, convex
polygons, trapezoids, rhombi, rounded rectangles, smooth radial blobs); VOC-side ones
are different, mostly non-convex (stars, crescents, rings, L-shapes, unions of discs,
crosses, arcs, bow-ties), so a box -> mask generator must transfer across families.
"""
from typing import Callable

import cv2
import numpy as np
from pycocotools import mask as mask_utils

_POLY_SHIFT = 4  # cv2.fillPoly sub-pixel bits


def _circle(n=48, aspect=1.0):
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(angles), aspect * np.sin(angles)], axis=1)


# Each builder draws one shape of its family in a unit frame: (polygons to add, polygons to subtract).
Polygons = list[np.ndarray]
Shape = tuple[Polygons, Polygons]


# COCO side: convex-ish families.
def _ellipse(rng: np.random.Generator) -> Shape:
    return [_circle(48, rng.uniform(0.35, 0.9))], []


def _rectangle(rng: np.random.Generator) -> Shape:
    aspect = rng.uniform(0.3, 0.7)
    return [np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], float)], []


def _triangle(rng: np.random.Generator) -> Shape:
    angles = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.uniform(1.3, 2.5, size=3))
    angles[2] = angles[0] + min(angles[2] - angles[0], 2 * np.pi - 0.9)
    return [np.stack([np.cos(angles), np.sin(angles)], axis=1)], []


def _convex_polygon(rng: np.random.Generator) -> Shape:
    n = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
    return [np.stack([np.cos(angles), rng.uniform(0.5, 1.0) * np.sin(angles)], axis=1)], []


def _trapezoid(rng: np.random.Generator) -> Shape:
    top = rng.uniform(0.15, 0.6)
    return [np.array([[-1, 1], [1, 1], [top, -1], [-top, -1]], float)], []


def _rhombus(rng: np.random.Generator) -> Shape:
    half = rng.uniform(0.35, 0.8)
    return [np.array([[0, -1], [half, 0], [0, 1], [-half, 0]], float)], []


def _rounded_rectangle(rng: np.random.Generator) -> Shape:
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    x = np.sign(cos) * np.abs(cos) ** 0.5
    y = np.sign(sin) * np.abs(sin) ** 0.5 * rng.uniform(0.35, 0.7)
    return [np.stack([x, y], axis=1)], []


def _radial_blob(rng: np.random.Generator) -> Shape:
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for freq in (2, 3, 4):
        radius += rng.uniform(0.05, 0.18) * np.cos(freq * angles + rng.uniform(0, 2 * np.pi))
    return [np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)], []


# VOC side: mostly non-convex families.
def _star(rng: np.random.Generator) -> Shape:
    n = int(rng.integers(5, 8))
    angles = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    radius = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.38, 0.55))
    return [np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)], []


def _crescent(rng: np.random.Generator) -> Shape:
    direction = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(0.35, 0.6)
    bite = _circle(48) * rng.uniform(0.8, 0.95) + offset * np.array([np.cos(direction), np.sin(direction)])
    return [_circle(48)], [bite]


def _ring(rng: np.random.Generator) -> Shape:
    aspect = rng.uniform(0.7, 1.0)
    hole = _circle(40, aspect) * rng.uniform(0.45, 0.62) + rng.uniform(-0.08, 0.08, size=2)
    return [_circle(48, aspect)], [hole]


def _l_shape(rng: np.random.Generator) -> Shape:
    t = rng.uniform(0.55, 0.85)  # bar thickness in a [-1, 1] frame
    return [np.array([[-1, -1], [-1 + t, -1], [-1 + t, 1 - t], [1, 1 - t], [1, 1], [-1, 1]], float)], []


def _disc_union(rng: np.random.Generator) -> Shape:
    discs, centre = [], np.zeros(2)
    radius = rng.uniform(0.5, 0.8)
    for _ in range(int(rng.integers(2, 4))):
        discs.append(_circle(32) * radius + centre)
        new_radius = rng.uniform(0.45, 0.8)
        angle = rng.uniform(0, 2 * np.pi)
        centre = centre + (radius + new_radius) * rng.uniform(0.5, 0.75) * np.array([np.cos(angle), np.sin(angle)])
        radius = new_radius
    return discs, []


def _cross(rng: np.random.Generator) -> Shape:
    a, b = rng.uniform(0.22, 0.38), rng.uniform(0.22, 0.38)
    return [np.array([[-1, -a], [1, -a], [1, a], [-1, a]], float),
            np.array([[-b, -1], [b, -1], [b, 1], [-b, 1]], float)], []


def _arc(rng: np.random.Generator) -> Shape:
    span = rng.uniform(np.deg2rad(200), np.deg2rad(280))
    inner = rng.uniform(0.5, 0.68)
    angles = np.linspace(0, span, 40)
    outer_arc = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return [np.concatenate([outer_arc, inner * outer_arc[::-1]])], []


def _bowtie(rng: np.random.Generator) -> Shape:
    waist = rng.uniform(0.12, 0.3)
    return [np.array([[-1, -1], [0, -waist], [1, -1], [1, 1], [0, waist], [-1, 1]], float)], []


_SHAPE_BUILDERS: dict[str, Callable[[np.random.Generator], Shape]] = {
    'ellipse': _ellipse, 'rectangle': _rectangle, 'triangle': _triangle, 'convex_polygon': _convex_polygon,
    'trapezoid': _trapezoid, 'rhombus': _rhombus, 'rounded_rectangle': _rounded_rectangle,
    'radial_blob': _radial_blob,
    'star': _star, 'crescent': _crescent, 'ring': _ring, 'l_shape': _l_shape, 'disc_union': _disc_union,
    'cross': _cross, 'arc': _arc, 'bowtie': _bowtie,
}


def _unit_shape(rng: np.random.Generator, family: str) -> Shape:
    """A shape in a unit frame: (polygons to add, polygons to subtract)."""
    if family not in _SHAPE_BUILDERS:
        raise ValueError(f'unknown shape family {family!r}')
    return _SHAPE_BUILDERS[family](rng)


def _place_shape(rng, family, box, upright=False):
    """Rotate the unit shape, then stretch it so that its added polygons span `box`
    = (x0, y0, width, height) exactly. Coordinates follow COCO: pixel (x, y) covers [x, x+1)."""
    adds, subs = _unit_shape(rng, family)
    theta = rng.uniform(-0.35, 0.35) if upright else rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    adds = [p @ rotation.T for p in adds]
    subs = [p @ rotation.T for p in subs]
    points = np.concatenate(adds)
    low, high = points.min(0), points.max(0)
    scale = np.array(box[2:], float) / (high - low)
    offset = np.array(box[:2], float)
    return [(p - low) * scale + offset for p in adds], [(p - low) * scale + offset for p in subs]


def _fill_cv2(polygons, height, width):
    """Rasterise with cv2 (pixel centres at integer coordinates, hence the -0.5)."""
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        points = np.round((polygon - 0.5) * (1 << _POLY_SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=_POLY_SHIFT)
    return mask


def _shape_mask(adds, subs, height, width):
    mask = _fill_cv2(adds, height, width)
    if subs:
        mask &= 1 - _fill_cv2(subs, height, width)
    return mask


def _coco_polygon_mask(polygons, height, width):
    """The mask pycocotools' COCO.annToMask gives for these polygons."""
    rles = mask_utils.frPyObjects([p.reshape(-1).tolist() for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles))


def _signed_area(polygon):
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _clip_half_plane(polygon, a, b, keep_left):
    """Sutherland-Hodgman: keep the part of `polygon` left (or right) of the line a->b."""
    if len(polygon) == 0:
        return polygon
    edge, offsets = b - a, polygon - a
    side = (edge[0] * offsets[:, 1] - edge[1] * offsets[:, 0]) * (1 if keep_left else -1)
    out = []
    for i in range(len(polygon)):
        p, q = polygon[i], polygon[(i + 1) % len(polygon)]
        sp, sq = side[i], side[(i + 1) % len(polygon)]
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            out.append(p + (q - p) * (sp / (sp - sq)))
    return np.array(out) if len(out) >= 3 else np.zeros((0, 2))


def _convex_difference(subject, cutter):
    """Exact convex pieces of subject minus cutter (both convex polygons)."""
    if _signed_area(cutter) < 0:
        cutter = cutter[::-1]
    pieces, rest = [], subject
    for i in range(len(cutter)):
        a, b = cutter[i], cutter[(i + 1) % len(cutter)]
        outside = _clip_half_plane(rest, a, b, keep_left=False)
        if len(outside) and abs(_signed_area(outside)) > 0.5:
            pieces.append(outside)
        rest = _clip_half_plane(rest, a, b, keep_left=True)
        if len(rest) == 0:
            break
    return pieces
