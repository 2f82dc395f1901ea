# Propagation + flow-guided GRU aggregation on key frames (Eq. 6; the cell: _base_/models/flow_guided_gru.py).
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow.py', './_base_/models/flow_guided_gru.py',
    './_base_/datasets/synthetic_vid.py', './_base_/schedules/schedule_synthvid.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
model = dict(aggregator=_base_.gru_aggregator, test_cfg=dict(key_frame_interval=_base_.key_frame_interval))
