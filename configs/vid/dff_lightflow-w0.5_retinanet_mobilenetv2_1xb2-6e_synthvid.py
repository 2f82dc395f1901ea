# Flow-guided feature propagation (DFF with Light Flow alpha=0.5): key frames every 10 frames at test time.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow.py', './_base_/datasets/synthetic_vid.py',
    './_base_/schedules/schedule_synthvid.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
model = dict(test_cfg=dict(key_frame_interval={{_base_.key_frame_interval}}))
