"""Random geometry of the synthetic pairs: similarity maps and star-shaped polygon outlines (numpy)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ['VERTICES', 'similarity', 'polygon_vertices']

VERTICES = 8  # polygon vertex slots; polygons with fewer corners get extra vertices on their edges


def similarity(angle_deg: float, zoom: float, src: Sequence[float], dst: Sequence[float]) -> np.ndarray:
    """3x3 map p -> dst + zoom R(angle) (p - src)."""
    a = math.radians(angle_deg)
    lin = zoom * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    out = np.eye(3)
    out[:2, :2] = lin
    out[:2, 2] = np.asarray(dst, float) - lin @ np.asarray(src, float)
    return out


def polygon_vertices(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A star polygon around the origin as VERTICES (angle, radius) pairs, angles sorted in [0, 2 pi).

    A polygon with fewer corners gets the extra vertices on its edges, so every shape has the same vertex count.
    """
    n = int(rng.integers(3, VERTICES + 1))
    # Consecutive vertices less than pi apart keep the origin inside, so every ray from it meets one edge: with
    # gaps drawn from [0.7, 1] and normalised, the largest is at most 2 pi / 2.4 (triangles), 0.83 pi.
    gaps = rng.uniform(0.7, 1.0, n)
    gaps = gaps / gaps.sum() * 2 * math.pi
    angles = list(np.sort(np.remainder(rng.uniform(0, 2 * math.pi) + np.cumsum(gaps), 2 * math.pi)))
    radii = list(rng.uniform(0.45, 0.98, n))
    while len(angles) < VERTICES:
        gaps = [(angles[(i + 1) % len(angles)] - angles[i]) % (2 * math.pi) for i in range(len(angles))]
        i = int(np.argmax(gaps))
        j = (i + 1) % len(angles)
        mid = angles[i] + gaps[i] / 2
        p0 = radii[i] * np.array([math.cos(angles[i]), math.sin(angles[i])])
        p1 = radii[j] * np.array([math.cos(angles[j]), math.sin(angles[j])])
        d = np.array([math.cos(mid), math.sin(mid)])
        e = p1 - p0
        r = (p0[0] * e[1] - p0[1] * e[0]) / (d[0] * e[1] - d[1] * e[0])  # ray from the origin meets the edge
        angles.insert(i + 1, mid % (2 * math.pi))
        radii.insert(i + 1, r)
        order = np.argsort(angles)
        angles, radii = [angles[k] for k in order], [radii[k] for k in order]
    return np.asarray(angles), np.asarray(radii)
