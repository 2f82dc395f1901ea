# Two-stage variant: flow-guided Faster R-CNN on MobileNetV2 + 2-level FPN, Light Flow motion.
img_mean = [123.675, 116.28, 103.53]
img_std = [58.395, 57.12, 57.375]
num_classes = 6
fpn_channels = 64

model = dict(
    type='FlowVideoDetector',
    data_preprocessor=dict(type='TrackDataPreprocessor', mean=img_mean, std=img_std, bgr_to_rgb=True,
                           pad_size_divisor=32),
    detector=dict(
        type='FasterRCNN',
        backbone=dict(type='MobileNetV2', out_indices=(2, 4), widen_factor=1.0, norm_eval=False),
        neck=dict(type='FPN', in_channels=[32, 96], out_channels=fpn_channels, num_outs=2),
        rpn_head=dict(
            type='RPNHead', in_channels=fpn_channels, feat_channels=fpn_channels,
            anchor_generator=dict(type='AnchorGenerator', scales=[4], ratios=[0.5, 1.0, 2.0], strides=[8, 16]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                    out_channels=fpn_channels, featmap_strides=[8, 16], finest_scale=32),
            bbox_head=dict(
                type='Shared2FCBBoxHead', in_channels=fpn_channels, fc_out_channels=256, roi_feat_size=7,
                num_classes=num_classes,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
                reg_class_agnostic=False,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
        train_cfg=dict(
            rpn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                                   match_low_quality=True, ignore_iof_thr=-1),
                     sampler=dict(type='RandomSampler', num=128, pos_fraction=0.5, neg_pos_ub=-1,
                                  add_gt_as_proposals=False),
                     allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=1000, max_per_img=300, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                                    match_low_quality=False, ignore_iof_thr=-1),
                      sampler=dict(type='RandomSampler', num=128, pos_fraction=0.25, neg_pos_ub=-1,
                                   add_gt_as_proposals=True),
                      pos_weight=-1, debug=False)),
        test_cfg=dict(
            rpn=dict(nms_pre=300, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))),
    motion=dict(type='LightFlowMotion', width_mult=0.5, flow_scale=0.5, img_mean=img_mean, img_std=img_std,
                bgr_to_rgb=True, resize_to_divisor=True, pretrained='lightflow_w0.5_synthvid'),
    warp=dict(type='FlowWarp', padding_mode='border'))
