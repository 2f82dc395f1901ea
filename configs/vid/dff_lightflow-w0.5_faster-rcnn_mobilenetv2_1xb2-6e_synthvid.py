# Two-stage variant: flow-guided propagation around Faster R-CNN (RPN + RoI heads run on the warped features).
_base_ = [
    './_base_/models/faster-rcnn_mobilenetv2_fpn_lightflow.py', './_base_/datasets/synthetic_vid.py',
    './_base_/schedules/schedule_synthvid.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
model = dict(test_cfg=dict(key_frame_interval={{_base_.key_frame_interval}}))
