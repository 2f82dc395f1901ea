"""Video datasets, samplers and transforms; importing registers ``CocoVIDDataset``, ``ConcatVideoDataset``
(DATASETS), ``TrackImgSubsetSampler`` (DATA_SAMPLERS) and ``KeyFrameClipSample`` (TRANSFORMS) in mmdet's registries."""
from .cocovid import CocoVIDDataset, ConcatVideoDataset, validate_cocovid
from .samplers import TrackImgSubsetSampler
from .transforms import KeyFrameClipSample

__all__ = ['CocoVIDDataset', 'ConcatVideoDataset', 'KeyFrameClipSample', 'TrackImgSubsetSampler', 'validate_cocovid']
