# GPU pretraining of Light Flow alpha = 1.0 on synthetic pairs rendered on the GPU itself (SyntheticFlowPreprocessor:
# the loader yields only sample indices), at the Chairs frame size 384x512 with Chairs-like motion and a mild
# homography, batch 32, bf16 autocast (tools/train_flow.py --amp bf16) and channels-last. Adam 1e-3 with a
# 300-iteration warm-up and cosine decay to 1e-5. tools/gpu_pretrain.sh picks max_iters from a measured smoke run so
# the whole run fits its time budget; 6k is the default for a manual run.
# Multi-GPU: torchrun --nproc_per_node N tools/train_flow.py CONFIG --launcher pytorch --amp bf16 (nccl).
_base_ = [
    '_base_/models/lightflow.py',
    '_base_/default_runtime.py',
]
size = (384, 512)
max_iters = 6000
model = dict(
    width_mult=1.0,
    channels_last=True,
    data_preprocessor=dict(
        type='SyntheticFlowPreprocessor',
        generator=dict(size=size, motion_scale=1.0, homography=1.0, num_objects=(5, 12)),
        augment=True))

train_dataloader = dict(
    batch_size=32,
    num_workers=0,  # nothing to load: indices only, the pairs are rendered on the GPU
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticIndices', num_samples=100_000_000))
# Held-out synthetic pairs (another seed), rendered on the CPU by the loader.
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='PackedFlowDataset', dataset=dict(type='SyntheticChairs', num_samples=64, size=size, seed=1000),
                 transforms='eval'))
test_dataloader = val_dataloader
val_evaluator = dict(type='FlowMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0, end=300),
    dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters, eta_min=1e-5, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=2, save_best=None))
log_processor = dict(by_epoch=False, window_size=50)
custom_hooks = [dict(type='LightFlowMetaHook')]
# TensorBoard may be missing on a bare GPU machine; the JSON/text logs are enough.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
