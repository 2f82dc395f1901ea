# The CPU pretraining recipe of the shipped `lightflow_w0.5_synthetic` weights (see the README's model card): Light Flow
# alpha = 0.5 on the built-in synthetic data at 256x320 with motion_scale=1.5 (Chairs-like displacements at this frame
# size, so the network transfers to native-resolution 384x512 pairs through estimate_flow), batch 8, Adam 1e-3 held
# for 12k iterations then cosine-decayed to 1e-5 by 20k. On 2 CPU cores: 1 training thread + 2 loader workers that
# render the pairs (OMP_NUM_THREADS=1), ~0.32-0.37 s/iteration (with 1 worker the renderer is the bottleneck: 0.39 s).
_base_ = [
    '_base_/models/lightflow.py',
    '_base_/datasets/synthetic_chairs.py',
    '_base_/default_runtime.py',
]
model = dict(width_mult=0.5)
size = (256, 320)
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(dataset=dict(type='SyntheticChairs', num_samples=10_000_000, size=size, seed=0, motion_scale=1.5)))
val_dataloader = dict(dataset=dict(dataset=dict(size=size, motion_scale=1.5)))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0, end=200),
    dict(type='CosineAnnealingLR', by_epoch=False, T_max=8000, eta_min=1e-5, begin=12000, end=20000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    logger=dict(interval=100, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=40, save_best=None))
log_processor = dict(by_epoch=False, window_size=50)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
custom_hooks = [
    dict(type='FlowVisualizationHook', num_samples=4),
    dict(type='LightFlowMetaHook'),
]
