# The seed recipe (issue text): Adam (0.9, 0.999), lr 1e-3, weight decay 4e-5 on weights and none on biases / BN,
# 403 epochs; lr 1e-3 for epochs 0-57, 5e-4 for 58-173, then halved at epochs 174, 232, 289 and 347: the seed's
# learning-rate table starts its last two steps at 289 and 347, not on the even 58-epoch grid (290, 348).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))

param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[58, 174, 232, 289, 347], gamma=0.5, begin=0, end=403),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=403, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# The recipe's lr is for a total batch of 128; enable with `--cfg-options auto_scale_lr.enable=True` on other setups.
auto_scale_lr = dict(enable=False, base_batch_size=128)
