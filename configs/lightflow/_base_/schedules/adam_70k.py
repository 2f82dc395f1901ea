# The paper's own schedule (arXiv 1804.05830, Sec. 4): 70k iterations; lr 1e-3 for the first 10k, 1e-2 for the next
# 20k, then halved every 10k (30k: 5e-3, 40k: 2.5e-3, 50k: 1.25e-3, 60k: 6.25e-4).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-2, betas=(0.9, 0.999), weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))

param_scheduler = [
    # x0.1 of the base 1e-2 for iterations 0-9999, then the full 1e-2. end=10001: mmengine's ConstantLR restores the
    # lr at step end - begin - 1 (tests/test_engine.py checks the lr at the sample iterations).
    dict(type='ConstantLR', by_epoch=False, factor=0.1, begin=0, end=10001),
    dict(type='MultiStepLR', by_epoch=False, milestones=[30000, 40000, 50000, 60000], gamma=0.5, begin=0, end=70000),
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=70000, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

auto_scale_lr = dict(enable=False, base_batch_size=128)
