"""Synthetic optical-flow data, one module per job.

- :mod:`.render`: :class:`SyntheticFlowGenerator`, the batched renderer of Chairs-like pairs with exact flow, and
  :class:`SyntheticBatch`; :mod:`.scene` draws each sample's layers and motions (numbers only), :mod:`.raster` turns
  them into pixels, flow and occlusion in torch;
- :mod:`.augment`: :func:`photometric_augment`, :func:`blur_frames` and :func:`flip_flow_batch`, on the batch's device;
- :mod:`.datasets`: :class:`SyntheticChairs`, :class:`SyntheticIndices` and :func:`export_chairs_layout`;
- :mod:`.textures`, :mod:`.shapes`, :mod:`.photos`: the texture bank, the object outlines and the one loader of
  scikit-image's photographs (shared with the video-detection set);
- :mod:`.vid`: the synthetic video-detection set in CocoVID format (pure numpy; ``tools/make_synthetic_vid.py``).
"""
from .augment import flip_flow_batch, photometric_augment
from .datasets import SyntheticChairs, SyntheticIndices, SyntheticSample, export_chairs_layout
from .render import SyntheticBatch, SyntheticFlowGenerator
from .textures import PHOTO_NAMES

__all__ = ['SyntheticFlowGenerator', 'SyntheticBatch', 'SyntheticChairs', 'SyntheticIndices', 'SyntheticSample',
           'export_chairs_layout', 'PHOTO_NAMES', 'photometric_augment', 'flip_flow_batch']
