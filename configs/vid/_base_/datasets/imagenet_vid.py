# ImageNet VID (ILSVRC2015) in the usual layout data/ILSVRC/{Data,Annotations,ImageSets}/{VID,DET}, converted by
#   python tools/convert_imagenet_vid.py data/ILSVRC data/ILSVRC/annotations
# which writes imagenet_vid_train.json, imagenet_vid_val.json and imagenet_det_30cls.json (CocoVID; file_name
# relative to data/ILSVRC/). Training: VID train videos + DET train images of the 30 VID classes (one-frame videos,
# whose clips repeat the one image), joined by the plugin's ConcatVideoDataset; test: VID val (555 videos).
#
# What model configs can rely on: the same data contract as synthetic_vid.py (see its header): train clips of
# T = num_key_frames + 1 frames from one video, current frame last, key frames up to `key_frame_interval` apart,
# PackTrackInputs format; val/test one frame per sample in video / frame order with video_id, frame_id,
# video_length metainfo; VIDMotionMetric keys vid/mAP, vid/mAP_slow, vid/mAP_medium, vid/mAP_fast. 30 classes.
# Note: TrackImgSampler visits every training frame each epoch (~1.1M VID + ~53k DET images); FGFA-style
# schedules are short (a few epochs) or should subsample.
_base_ = '../key_frames.py'  # key_frame_interval, shared with the model's test schedule
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)

dataset_type = 'CocoVIDDataset'
data_root = 'data/ILSVRC/'
classes = ('airplane', 'antelope', 'bear', 'bicycle', 'bird', 'bus', 'car', 'cattle', 'dog', 'domestic_cat',
           'elephant', 'fox', 'giant_panda', 'hamster', 'horse', 'lion', 'lizard', 'monkey', 'motorcycle', 'rabbit',
           'red_panda', 'sheep', 'snake', 'squirrel', 'tiger', 'train', 'turtle', 'watercraft', 'whale', 'zebra')
metainfo = dict(classes=classes)
# The mobile setting of the paper: shorter side 320 (the FGFA/DFF server setting is 600 x 1000).
img_scale = (533, 320)
num_key_frames = 2
backend_args = None

train_pipeline = [
    dict(type='KeyFrameClipSample', num_key_frames=num_key_frames,
         key_frame_interval={{_base_.key_frame_interval}}, random_interval=True),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile', backend_args=backend_args),
            dict(type='LoadTrackAnnotations'),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
        ]),
    dict(type='PackTrackInputs'),
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile', backend_args=backend_args),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='LoadTrackAnnotations'),
        ]),
    dict(type='PackTrackInputs'),
]

_train_common = dict(type=dataset_type, data_root=data_root, data_prefix=dict(img_path=''), metainfo=metainfo,
                     filter_cfg=dict(filter_empty_gt=False, min_size=32), pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='TrackImgSampler'),
    dataset=dict(
        # Not mmengine's ConcatDataset: TrackImgSampler's (video, frame) indices need the plugin's wrapper.
        type='ConcatVideoDataset',
        datasets=[
            dict(ann_file='annotations/imagenet_vid_train.json', **_train_common),
            # DET images carry no empty frames worth keeping: drop images without VID-class boxes.
            dict(ann_file='annotations/imagenet_det_30cls.json',
                 **dict(_train_common, filter_cfg=dict(filter_empty_gt=True, min_size=32))),
        ]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='TrackImgSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/imagenet_vid_val.json',
        data_prefix=dict(img_path=''),
        metainfo=metainfo,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# The official VID protocol: mAP@0.5 with ImageNet's small-object IoU rule.
val_evaluator = dict(type='VIDMotionMetric', imagenet_protocol=True)
test_evaluator = val_evaluator
