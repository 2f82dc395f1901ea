# Label-free adaptation of the shipped Light Flow (lightflow_w0.5_synthetic) to the synthetic VID videos at the flow
# size the synthvid detector configs run it at (224x288 frames, flow_scale 0.5, resized to the /64 grid: 128x128).
# Frames only, no motion ground truth: each pair (t, t -/+ g), g in 1..l-1 (key interval l = 10), is labelled by OpenCV
# DIS MEDIUM at the frames' full size where its forward-backward check agrees (lightflow.data.VideoPairs), plus UFlow's
# census + edge-aware smoothness terms; a quarter of the pairs are generator pairs (exact flow), so the network stays
# general. Run it with tools/adapt_flow.py (sources on the command line) or tools/train_flow.py with data_root=<a
# make_synthetic_vid.py output>. Checkpoints are chosen by the teacher EPE on held-out videos of the adaptation set's
# own val split, never on the detector's val videos.
_base_ = ['_base_/schedules/adam_4e-4_finetune.py', '../vid/_base_/key_frames.py']
from lightflow.sizes import flow_size  # noqa: E402  (after _base_, so mmengine reads this as a plain config)

data_root = 'data/synthvid_adapt/'
# The flow size of the synthvid detectors: 224x288 frames, motion flow_scale 0.5, resize_to_divisor on Light Flow's
# /64 grid (FrameMotion.flow_size) -> (128, 128).
size = flow_size(224, 288, scale=0.5, divisor=64)
cache_dir = 'teacher_cache'  # under data_root
# A non-key frame is 1..l-1 frames from its key (l: the detectors' key-frame interval,
# configs/vid/_base_/key_frames.py).
max_gap = _base_.key_frame_interval - 1
model = dict(type='LightFlowAdaptModel', width_mult=0.5, div_flow=20.0, pretrained='lightflow_w0.5_synthetic',
             photometric_weight=0.1, smooth_weight=0.5, data_preprocessor=dict(type='FlowDataPreprocessor'))
train_transforms = [dict(type='RandomHorizontalFlip', p=0.5), dict(type='PhotometricJitter'), dict(type='ToTensor')]
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='SeededInfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatFlowDataset',
        datasets=[
            dict(type='VideoPairsDataset', data_root=data_root, sources=['annotations/train.json'], size=size,
                 max_gap=max_gap, pairs_per_video=48, cache_dir=cache_dir, seed=0, transforms=train_transforms),
            dict(type='PackedFlowDataset', dataset=dict(type='SyntheticChairs', num_samples=8192, size=size, seed=0),
                 transforms=train_transforms),
        ]))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='VideoPairsDataset', data_root=data_root, sources=['annotations/val.json'], size=size,
                 max_gap=max_gap, pairs_per_video=96, cache_dir=cache_dir, seed=1, reverse_prob=0.0, transforms='eval'))
test_dataloader = val_dataloader
val_evaluator = dict(type='FlowMetric')
test_evaluator = val_evaluator

max_iters = 6000
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0, end=200),
    dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters - 1000, eta_min=1e-5, begin=1000, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
