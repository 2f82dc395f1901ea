"""Video datasets, samplers and transforms; importing registers ``CocoVIDDataset``, ``ConcatVideoDataset``
(DATASETS), ``TrackImgSubsetSampler`` (DATA_SAMPLERS), ``KeyFrameClipSample`` and ``BlurLastKeyFrame`` (TRANSFORMS) in
mmdet's registries."""
from .cocovid import CocoVIDDataset, ConcatVideoDataset, validate_cocovid
from .samplers import TrackImgSubsetSampler
from .transforms import BlurLastKeyFrame, KeyFrameClipSample

__all__ = ['BlurLastKeyFrame', 'CocoVIDDataset', 'ConcatVideoDataset', 'KeyFrameClipSample', 'TrackImgSubsetSampler',
           'validate_cocovid']
