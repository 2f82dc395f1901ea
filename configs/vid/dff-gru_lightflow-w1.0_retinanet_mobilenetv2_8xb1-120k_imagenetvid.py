# Propagation + flow-guided GRU (Eq. 6, 128-d = FPN channels, one cell shared by the 3 levels) on ImageNet VID.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow_imagenetvid.py', './_base_/datasets/imagenet_vid.py',
    './_base_/schedules/schedule_imagenetvid_120k.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(type='lightflow.AtomicCheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
model = dict(aggregator=dict(type='FlowGuidedGRU', in_channels=128, hidden_channels=128, num_levels=1, max_chain=2),
             test_cfg=dict(key_frame_interval={{_base_.key_frame_interval}}))
