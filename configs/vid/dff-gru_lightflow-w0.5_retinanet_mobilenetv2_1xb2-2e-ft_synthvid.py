# Propagation + GRU fine-tuned 2 epochs from the single-frame detector (--cfg-options load_from=...): the GRU (Eq. 6,
# ReLU candidate: the FPN features are post-ReLU) starts as plain propagation; the pretrained flow trains at lr x0.1.
_base_ = [
    './_base_/models/retinanet_mobilenetv2_fpn_lightflow.py', './_base_/datasets/synthetic_vid.py',
    './_base_/schedules/schedule_synthvid_ft.py', './_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)
model = dict(aggregator=dict(type='FlowGuidedGRU', in_channels=64, hidden_channels=64, num_levels=1,
                             candidate_act='relu', init_as_propagation=True,
                             # Clips of 2 keys train 1 step; longer test chains drift: restart after 2 (README).
                             max_chain=2),
             test_cfg=dict(key_frame_interval={{_base_.key_frame_interval}}))
