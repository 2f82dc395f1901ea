# Propagation + GRU fine-tuned 2 epochs from the single-frame detector (--cfg-options load_from=...): the GRU (Eq. 6;
# the cell: _base_/models/flow_guided_gru.py) starts as plain propagation; the pretrained flow trains at lr x0.1.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow.py', './_base_/models/flow_guided_gru.py',
    './_base_/datasets/synthetic_vid.py', './_base_/schedules/schedule_synthvid_ft.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
model = dict(aggregator=_base_.gru_aggregator, test_cfg=dict(key_frame_interval=_base_.key_frame_interval))
