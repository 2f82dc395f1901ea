# End-to-end fine-tuning from the single-frame detector (pass its checkpoint: --cfg-options load_from=...): 2 epochs
# (each visits every training frame once as the current frame: 2 x 2,400 clips on the 120-frame videos) at a quarter of
# the from-scratch learning rate, the pretrained Light Flow at a tenth of that.
_base_ = './schedule_synthvid.py'
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=5e-4), paramwise_cfg=dict(custom_keys={'motion': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[max_epochs - 1], gamma=0.1),
]
