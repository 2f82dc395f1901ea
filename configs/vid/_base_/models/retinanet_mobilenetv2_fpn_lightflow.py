# Flow-guided RetinaNet on mmdet's MobileNetV2 + a small 2-level FPN (strides 8, 16), Light Flow motion.
# Leaf configs switch the motion off (single-frame baseline), add the GRU aggregator or change sizes.
img_mean = [123.675, 116.28, 103.53]
img_std = [58.395, 57.12, 57.375]
num_classes = 6
fpn_channels = 64

model = dict(
    type='FlowVideoDetector',
    data_preprocessor=dict(type='TrackDataPreprocessor', mean=img_mean, std=img_std, bgr_to_rgb=True,
                           pad_size_divisor=32),
    detector=dict(
        type='RetinaNet',
        # Stages 2 and 4 of MobileNetV2: strides 8 and 16 (32 and 96 channels at widen_factor 1.0).
        backbone=dict(type='MobileNetV2', out_indices=(2, 4), widen_factor=1.0, act_cfg=dict(type='ReLU6'),
                      norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False),
        # ReLU after the FPN convs: the features that get propagated and aggregated are post-ReLU, as the paper's
        # (and the GRU's ReLU candidate, Eq. 6, can reproduce them).
        neck=dict(type='FPN', in_channels=[32, 96], out_channels=fpn_channels, num_outs=2, act_cfg=dict(type='ReLU')),
        bbox_head=dict(
            type='RetinaHead', num_classes=num_classes, in_channels=fpn_channels, feat_channels=fpn_channels,
            # No stacked convs: the classifier and box regressor (3x3 each) sit on the FPN features. The head runs
            # on every frame, so it is sized for the mobile setting: one stacked 3x3 conv per branch would cost 215
            # MFLOP at 224x288, a quarter of the backbone + FPN (870), and alone make a non-key frame > 1/4 of a key
            # frame; without them the head is 29 MFLOP.
            stacked_convs=0,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=3, scales_per_octave=2, ratios=[1.0],
                                  strides=[8, 16]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                                     ignore_iof_thr=-1),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=50)),
    # Light Flow at half the detector resolution (paper: 112 vs 224 px); flow returned in input pixels and resized
    # per feature level by FlowWarp; resize_to_divisor runs it at the nearest /64 size instead of padding (224x288 ->
    # 112x144 -> 128x128, not 128x192). The flow starts from lightflow_w0.5_synthvid: the shipped synthetic-pretrained
    # weights adapted without labels to these videos at this size (tools/adapt_flow.py; README, "Which motion helps the
    # detector"). pretrained=<tools/train_flow.py / adapt_flow.py checkpoint> for your own, None to learn it from the
    # detection loss alone.
    motion=dict(type='LightFlowMotion', width_mult=0.5, flow_scale=0.5, img_mean=img_mean, img_std=img_std,
                bgr_to_rgb=True, resize_to_divisor=True, pretrained='lightflow_w0.5_synthvid'),
    warp=dict(type='FlowWarp', padding_mode='border'))
