"""Video datasets and transforms; importing registers ``CocoVIDDataset``, ``ConcatVideoDataset`` (DATASETS) and
``KeyFrameClipSample`` (TRANSFORMS) in mmdet's registries."""
from .cocovid import CocoVIDDataset, ConcatVideoDataset, validate_cocovid
from .transforms import KeyFrameClipSample

__all__ = ['CocoVIDDataset', 'ConcatVideoDataset', 'KeyFrameClipSample', 'validate_cocovid']
