# Propagation + flow-guided GRU (Eq. 6, 128-d = FPN channels, one cell shared by the 3 levels) on ImageNet VID.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow_imagenetvid.py', './_base_/datasets/imagenet_vid.py',
    './_base_/schedules/schedule_imagenetvid_120k.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(type='lightflow.AtomicCheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
# The paper's training sample (Section 4, Table 3): 8 key frames exactly l apart, then the current frame 0..l-1 after
# the last; the loss on the current frame only; inference over the whole video (no restart).
num_key_frames = 8
train_pipeline = [
    dict(type='KeyFrameClipSample', num_key_frames=num_key_frames,
         key_frame_interval={{_base_.key_frame_interval}}, random_interval=False),
    *_base_.train_pipeline[1:],
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(aggregator=dict(type='FlowGuidedGRU', in_channels=128, hidden_channels=128, num_levels=1, max_chain=None),
             test_cfg=dict(key_frame_interval={{_base_.key_frame_interval}}))
