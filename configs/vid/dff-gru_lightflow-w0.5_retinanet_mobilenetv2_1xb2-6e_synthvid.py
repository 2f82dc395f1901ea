# Propagation + flow-guided GRU aggregation on key frames (Eq. 6); one GRU cell shared by both FPN levels, hidden
# size = FPN channels (64) so the aggregated feature feeds the head directly.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow.py', './_base_/datasets/synthetic_vid.py',
    './_base_/schedules/schedule_synthvid.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
# Eq. 6's ReLU candidate (the FPN's outputs are post-ReLU; 'identity' is for signed features), and the cell starts as
# plain propagation (the new key's own features) and learns how much warped history to mix in.
model = dict(aggregator=dict(type='FlowGuidedGRU', in_channels=64, hidden_channels=64, num_levels=1,
                             candidate_act='relu', init_as_propagation=True,
                             # Clips of 2 keys train 1 step; longer test chains drift: restart after 2 (README).
                             max_chain=2),
             test_cfg=dict(key_frame_interval={{_base_.key_frame_interval}}))
