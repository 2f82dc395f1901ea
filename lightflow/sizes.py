"""The one flow-size rule: the (h, w) a flow is computed at for (height, width) frames.

The video detector's motion modules (``mmdet_plugin`` ``FrameMotion.flow_size``), the adaptation configs
(``configs/lightflow/*adapt*.py``: the teacher pairs at the size the detector runs the flow at) and
``tools/demo_video.py``'s DIS panel all size the flow with :func:`flow_size`.
"""
from __future__ import annotations

import math
import operator

__all__ = ['flow_size']


def flow_size(height: int, width: int, scale: float, divisor: int | None = None) -> tuple[int, int]:
    """The (h, w) of the flow for (height, width) frames: each side times ``scale`` (rounded, at least 1), then, with
    ``divisor`` (Light Flow's 64), the nearest multiple of it (at least ``divisor``): the aspect changes a little and
    the network runs on no padding. ``ValueError`` naming the argument for a size < 1, a scale outside (0, 4] or a
    divisor < 1.

    >>> flow_size(224, 288, 0.5)
    (112, 144)
    >>> flow_size(224, 288, 0.5, divisor=64)
    (128, 128)
    """
    for name, side in (('height', height), ('width', width)):
        try:
            ok = not isinstance(side, bool) and operator.index(side) >= 1
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f'{name} must be an integer >= 1, got {side!r}')
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and 0 < scale <= 4):
        raise ValueError(f'scale must be in (0, 4], got {scale!r}')
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if divisor is not None:
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise ValueError(f'divisor must be an integer >= 1 or None, got {divisor!r}')
        size = (max(divisor, divisor * round(size[0] / divisor)), max(divisor, divisor * round(size[1] / divisor)))
    return size
