# Importing lightflow.engine registers the project's classes in the `lightflow` scope (lightflow.engine.registry);
# mmengine's own hooks, optimizers, loops and visualizers are found through the parent registries.
default_scope = 'lightflow'
custom_imports = dict(imports=['lightflow.engine'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keeps the latest checkpoints plus best_EPE_*.pth (lower is better).
    # Atomic saves; the oldest kept checkpoint is deleted only after the new one is complete.
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3, save_best='EPE', rule='less'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # RNG states in every checkpoint, restored on --resume (bit-exact with the seeded samplers of the datasets).
    rng_state=dict(type='RNGStateHook'),
)
custom_hooks = [
    # work_dir/vis/iter_<N>/*.png: frame 1 | prediction | GT colour flow of the first validation samples.
    dict(type='FlowVisualizationHook', num_samples=4),
    # meta['lightflow'] = width_mult / div_flow in every checkpoint.
    dict(type='LightFlowMetaHook'),
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train_flow.py switches to gloo when CUDA is unavailable.
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
