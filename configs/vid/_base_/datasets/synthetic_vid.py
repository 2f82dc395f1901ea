# Synthetic VID (tools/make_synthetic_vid.py data/synthetic_vid: 20 train / 12 val videos of 120 frames by default):
# 6 shape classes, frames 224x288 (HxW: the paper's
# mobile setting, 224 px short side), moving camera, occlusion, blurred frames; CocoVID JSON.
#
# What model configs can rely on (the data contract):
# - train: each sample is one clip of T = num_key_frames + 1 frames (3 here, 9 in the 8-key GRU config) of ONE video
#   (KeyFrameClipSample), packed by
#   PackTrackInputs: `inputs` (T, 3, H, W) uint8 (BGR) and a TrackDataSample whose `video_data_samples` are T
#   DetDataSamples ordered by frame_id (non-decreasing; a frame repeats only at a video's start). The LAST frame is
#   the current frame (it carries the loss); the first T-1 are key frames spaced up to `key_frame_interval` apart,
#   the last of them 0..l-1 frames before the current one. TrackDataSample metainfo: key_frames_inds=[T-1] (mmdet's
#   name for the loss frame), ref_frames_inds=[0..T-2].
# - every DetDataSample: metainfo video_id, frame_id, video_length (frames in the video), img_id, img_path,
#   ori_shape, img_shape, scale_factor, flip, instances (raw boxes, original coordinates; used by VIDMotionMetric);
#   gt_instances.bboxes (float tensor (N, 4) x1y1x2y2), .labels, .instances_ids. pad_shape / batch_input_shape come from
#   TrackDataPreprocessor (use it: it gives inputs (N, T, 3, H, W) float).
# - val/test: one frame per sample (T = 1), batch_size 1, TrackImgSampler: videos in order, frames in frame_id
#   order, each video's frames contiguous. VIDMotionMetric reports vid/mAP, vid/mAP_slow, vid/mAP_medium,
#   vid/mAP_fast (mAP@0.5; NaN for a speed with no objects).
# - override `data_root` with --cfg-options or `train_dataloader = dict(dataset=dict(data_root=...))` etc.; to change
#   the clip, replace the pipeline: `train_dataloader = dict(dataset=dict(pipeline=[...]))` built from
#   `_base_.train_pipeline`.
_base_ = '../key_frames.py'  # key_frame_interval, shared with the model's test schedule
custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)

dataset_type = 'CocoVIDDataset'
data_root = 'data/synthetic_vid/'
classes = ('disc', 'box', 'triangle', 'star', 'cross', 'ring')
metainfo = dict(classes=classes)
img_scale = (288, 224)  # (w, h): the generator's frame size, so Resize keeps it (scale_factor 1)
num_key_frames = 2
backend_args = None

train_pipeline = [
    dict(type='KeyFrameClipSample', num_key_frames=num_key_frames,
         key_frame_interval={{_base_.key_frame_interval}}, random_interval=True),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,  # one flip for the whole clip, so the flow between frames stays valid
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

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='TrackImgSampler'),  # every (video, frame) once per epoch, shuffled
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/train.json',
        data_prefix=dict(img_path=''),
        metainfo=metainfo,
        # Keep frames without boxes: they are valid key frames and keep the videos contiguous.
        filter_cfg=dict(filter_empty_gt=False, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='TrackImgSampler'),  # test mode: frames in order, never shuffled
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/val.json',
        data_prefix=dict(img_path=''),
        metainfo=metainfo,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='VIDMotionMetric')
test_evaluator = val_evaluator
