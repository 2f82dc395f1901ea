"""Small helpers of the video models."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

__all__ = ['patched_attributes']


@contextmanager
def patched_attributes(patches: Sequence[tuple[object, str, object]]) -> Iterator[None]:
    """Set instance attributes ``(object, name, value)`` for the block, then restore what each object held before
    (back to the class's method where it held nothing)."""
    missing = object()
    saved = [(obj, attr, vars(obj).get(attr, missing)) for obj, attr, _ in patches]
    for obj, attr, value in patches:
        setattr(obj, attr, value)
    try:
        yield
    finally:
        for obj, attr, old in reversed(saved):
            if old is missing:
                vars(obj).pop(attr, None)
            else:
                setattr(obj, attr, old)
