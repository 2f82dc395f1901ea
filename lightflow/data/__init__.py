"""Optical-flow data: file-index datasets (:mod:`.datasets`), joint transforms (:mod:`.transforms`), the synthetic
data (:mod:`.synthetic`: the Chairs-like pair renderer, its augmentation and datasets, and the synthetic VID set) and
FGFA's motion IoU (:mod:`.motion_iou`), and the synthetic VID set's frame pairs with exact flow
(:mod:`.vid_exact_pairs`)."""
from .registry import FLOW_DATASETS, FLOW_TRANSFORMS, register_flow_dataset, register_flow_transform
from .datasets import (FlowDataset, FlowPairList, FlowSample, FlyingChairs, KITTI2015, Sintel, parse_chairs_split,
                       sanitize_flow)
from .synthetic import (PHOTO_NAMES, SyntheticBatch, SyntheticChairs, SyntheticFlowGenerator, SyntheticIndices,
                        SyntheticSample, export_chairs_layout, flip_flow_batch, photometric_augment)
from .transforms import (CenterCrop, Compose, PhotometricJitter, RandomAffine, RandomCrop, RandomHorizontalFlip,
                         RandomVerticalFlip, Resize, ToTensor, affine_warp_sample, chairs_train_transforms,
                         eval_transforms)
from .vid_exact_pairs import SyntheticVIDExactPairs

__all__ = ['FlowDataset', 'FlowPairList', 'FlowSample', 'FlyingChairs', 'Sintel', 'KITTI2015', 'parse_chairs_split',
           'sanitize_flow', 'SyntheticChairs', 'SyntheticSample', 'SyntheticFlowGenerator', 'SyntheticBatch',
           'SyntheticIndices', 'photometric_augment', 'flip_flow_batch', 'export_chairs_layout', 'PHOTO_NAMES',
           'Compose', 'RandomAffine', 'RandomHorizontalFlip', 'RandomVerticalFlip', 'RandomCrop', 'CenterCrop',
           'PhotometricJitter', 'Resize', 'ToTensor', 'affine_warp_sample', 'chairs_train_transforms',
           'eval_transforms', 'SyntheticVIDExactPairs', 'FLOW_DATASETS', 'FLOW_TRANSFORMS', 'register_flow_dataset',
           'register_flow_transform']
