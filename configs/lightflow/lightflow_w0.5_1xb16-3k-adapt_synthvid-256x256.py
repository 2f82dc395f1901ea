# Issue 14: lead a (label-free adaptation, lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128.py) at the full-size flow
# input of the synthvid detectors (model.motion.flow_scale=1.0: 224x288 frames resized to 256x256), started from the
# generic weights, which were pretrained at 256x320. 16 pairs per video (the DIS teacher is computed once per pair at
# this size, in its own cache folder), generator pairs as in the generic recipe (motion_scale 1.5), 3,000 iterations.
# Measured in the README ("A larger flow input"); not shipped.
_base_ = ['lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128.py']
from lightflow.sizes import flow_size  # noqa: E402  (after _base_, so mmengine reads this as a plain config)

data_root = 'data/synthvid_adapt/'
size = flow_size(224, 288, scale=1.0, divisor=64)  # (256, 256)
train_transforms = [dict(type='RandomHorizontalFlip', p=0.5), dict(type='PhotometricJitter'), dict(type='ToTensor')]
train_dataloader = dict(num_workers=2, dataset=dict(datasets=[
    dict(type='VideoPairsDataset', data_root=data_root, sources=['annotations/train.json'], size=size,
         max_gap=_base_.max_gap, pairs_per_video=16, cache_dir='teacher_cache256', seed=0, transforms=train_transforms),
    dict(type='PackedFlowDataset', dataset=dict(type='SyntheticChairs', num_samples=8192, size=size, seed=0, motion_scale=1.5),
         transforms=train_transforms),
]))
val_dataloader = dict(dataset=dict(size=size, cache_dir='teacher_cache256'))
test_dataloader = val_dataloader
max_iters = 3000
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0, end=200),
    dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters - 1000, eta_min=1e-5, begin=1000, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
