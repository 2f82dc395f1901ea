# ImageNet VID schedule (DFF / FGFA style): SGD, 120k iterations of 8 clips (8 GPUs x 1), decay after 80k.
# Leaf configs set iteration-based checkpoints and logs. Iteration based: TrackImgSampler visits every one of the ~1.1M VID frames per epoch, far more than FGFA trains on.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=120000, val_interval=120000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
                     clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=120000, by_epoch=False, milestones=[80000], gamma=0.1),
]
auto_scale_lr = dict(enable=True, base_batch_size=8)
