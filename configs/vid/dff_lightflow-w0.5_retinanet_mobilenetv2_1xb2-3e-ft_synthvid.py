# End-to-end fine-tuning as in the paper: propagation trained 3 epochs from the single-frame detector (pass its
# checkpoint: --cfg-options load_from=work_dirs/.../epoch_6.pth), the pretrained Light Flow trainable at a tenth of the
# detector's learning rate. Freeze the flow instead with --cfg-options model.motion.freeze=True.
_base_ = ['./dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py']
max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=5e-4), paramwise_cfg=dict(custom_keys={'motion': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[max_epochs - 1], gamma=0.1),
]
