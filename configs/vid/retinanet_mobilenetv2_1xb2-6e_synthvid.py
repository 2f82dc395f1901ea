# Single-frame baseline: the same FlowVideoDetector, data and schedule as the propagation configs, but no motion:
# every frame is a key frame and the loss uses the current frame's own features (a plain per-frame RetinaNet).
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow.py', './_base_/datasets/synthetic_vid.py',
    './_base_/schedules/schedule_synthvid.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
model = dict(motion=None, test_cfg=dict(key_frame_interval=1))
