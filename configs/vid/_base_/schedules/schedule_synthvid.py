# CPU-sized schedule for the synthetic set: AdamW (the detector trains from scratch: no downloads), short warmup,
# step decay near the end. The three synthetic configs share it so their comparison is fair.
max_epochs = 6
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[max_epochs - 1], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=2)
