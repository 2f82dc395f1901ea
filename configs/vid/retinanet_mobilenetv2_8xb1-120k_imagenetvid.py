# Single-frame baseline on ImageNet VID (frame size from the dataset config): every frame a key frame, no motion.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow_imagenetvid.py', './_base_/datasets/imagenet_vid.py',
    './_base_/schedules/schedule_imagenetvid_120k.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(type='lightflow.AtomicCheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
model = dict(motion=None, test_cfg=dict(key_frame_interval=1))
