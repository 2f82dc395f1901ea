# Demo / smoke test: Light Flow alpha = 0.5 trained for 2k iterations (batch 8, 128x192) on the built-in synthetic
# data (`make demo`). On 2 idle CPU cores: ~0.13-0.17 s/iteration, ~6 min in all; held-out EPE 9.39 (random init)
# -> 3.47 (best, iteration 1500) / 3.54 (iteration 2000); predicting zero flow scores 3.53 on this set, so this short
# run mostly calibrates the output, and real matching needs far longer training (the Chairs configs).
_base_ = [
    '_base_/models/lightflow.py',
    '_base_/datasets/synthetic_chairs.py',
    '_base_/default_runtime.py',
]
model = dict(width_mult=0.5)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=3e-3, betas=(0.9, 0.999), weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, T_max=2000, eta_min=1e-4, begin=0, end=2000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
# Validate once before the first iteration too, so the log shows the EPE before and after training.
custom_hooks = [
    dict(type='ValidateBeforeTrainHook'),
    dict(type='FlowVisualizationHook', num_samples=4),
    dict(type='LightFlowMetaHook'),
]
