# End-to-end fine-tuning as in the paper: propagation trained 2 epochs from the single-frame detector
# (--cfg-options load_from=<retinanet_mobilenetv2_1xb2-6e_synthvid checkpoint>), the pretrained Light Flow trainable at
# a tenth of the detector's learning rate with its BN statistics fixed. Freeze it instead: model.motion.freeze=True.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow.py', './_base_/datasets/synthetic_vid.py',
    './_base_/schedules/schedule_synthvid_ft.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
model = dict(test_cfg=dict(key_frame_interval={{_base_.key_frame_interval}}))
