# ImageNet VID sizes of the flow-guided RetinaNet: 30 classes, ImageNet-pretrained MobileNetV2, 3-level FPN of 128
# channels (strides 8, 16, 32), full Light Flow (alpha=1) at half resolution (the key-frame interval: ../key_frames.py).
_base_ = './retinanet_mobilenetv2_fpn_lightflow.py'
num_classes = 30
fpn_channels = 128
# Path of a tools/train_flow.py checkpoint trained on Flying Chairs (override with --cfg-options).
flow_checkpoint = 'work_dirs/lightflow_w1.0_2xb64-403e_flyingchairs/epoch_403.pth'

model = dict(
    detector=dict(
        backbone=dict(out_indices=(2, 4, 6), norm_eval=True,
                      init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
        neck=dict(in_channels=[32, 96, 320], out_channels=fpn_channels, num_outs=3),
        bbox_head=dict(num_classes=num_classes, in_channels=fpn_channels, feat_channels=fpn_channels, stacked_convs=2,
                       anchor_generator=dict(octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                             strides=[8, 16, 32])),
        test_cfg=dict(nms_pre=1000, score_thr=0.01, max_per_img=100)),
    motion=dict(width_mult=1.0, resize_to_divisor=False, pretrained=flow_checkpoint))
