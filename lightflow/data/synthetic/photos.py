"""scikit-image's bundled photographs, loaded once per process: the one photo source of both synthetic generators.

Pure numpy (scikit-image is imported on first use); no torch. Photographs missing from a scikit-image build (its
optional data files) or not 8-bit are skipped, so callers get a possibly shorter tuple, in the order they asked for.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ['load_photos']


@lru_cache(maxsize=4)
def load_photos(names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """The photographs ``names`` of ``skimage.data`` as uint8 RGB (H, W, 3) arrays (grey replicated, alpha dropped).

    Args:
        names: ``skimage.data`` loader names, in the order wanted (the order fixes the generators' outputs).

    Returns:
        the photographs that could be loaded, read-only, in the order of ``names``.
    """
    import skimage.data

    photos = []
    for name in names:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        try:
            img = np.asarray(loader())
        except Exception:  # a build of scikit-image without this file (optional 'data' extras)
            continue
        if img.dtype != np.uint8:
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = np.ascontiguousarray(img[..., :3])
        img.setflags(write=False)  # shared by every caller through the cache
        photos.append(img)
    return tuple(photos)
