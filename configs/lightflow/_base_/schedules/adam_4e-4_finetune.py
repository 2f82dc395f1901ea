# Fine-tuning from pretrained Light Flow weights (the adaptation and matched-generator recipes): Adam 4e-4, no decay on
# BN and biases, validation and a best-EPE checkpoint every 500 iterations. Each config sets its own max_iters,
# param_scheduler (warm-up, then cosine towards 1e-5) and train_cfg. It overrides the shared runtime's hooks, logging
# and environment, so it carries that runtime as its own base.
_base_ = ['../default_runtime.py']
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=4e-4, betas=(0.9, 0.999), weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=3, save_best='EPE', rule='less'))
log_processor = dict(by_epoch=False, window_size=50)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
