"""Small checks shared by the plugin's models and datasets (a leaf module: it imports nothing of the plugin, so
``datasets`` need not import ``models`` for them)."""
from __future__ import annotations

import numbers
from typing import Any

__all__ = ['KEY_FRAME_INTERVAL', 'positive_integer']

# The paper's key-frame interval l (Section 3), the code's one default (configs: configs/vid/_base_/key_frames.py).
KEY_FRAME_INTERVAL = 10


def positive_integer(name: str, value: Any) -> int:
    """``value`` if it is an integer >= 1 (2.7, '3' and True are refused, not truncated); ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    return int(value)
