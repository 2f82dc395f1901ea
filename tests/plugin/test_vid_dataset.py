"""CocoVIDDataset loading / validation and KeyFrameClipSample with the real mmdet pipeline of the base config."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmdet_plugin.datasets  # noqa: F401  (registers CocoVIDDataset, KeyFrameClipSample)
import mmdet_plugin.evaluation  # noqa: F401
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet_plugin.datasets import KeyFrameClipSample
from lightflow.data.synthetic.vid import generate_synthetic_vid

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / 'configs' / 'vid' / '_base_' / 'datasets' / 'synthetic_vid.py'


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


@pytest.fixture(scope='module')
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('vid') / 'synthetic_vid'
    generate_synthetic_vid(out, num_train_videos=2, num_val_videos=2, num_frames=12, seed=1)
    return out


def _tiny_coco() -> dict:
    """Two videos, images deliberately listed out of frame order, categories out of name order."""
    images = [dict(id=1, file_name='a/2.jpg', height=40, width=50, video_id=7, frame_id=2),
              dict(id=2, file_name='a/0.jpg', height=40, width=50, video_id=7, frame_id=0),
              dict(id=3, file_name='a/1.jpg', height=40, width=50, video_id=7, frame_id=1),
              dict(id=4, file_name='b/0.jpg', height=40, width=60, video_id=3, frame_id=0)]
    anns = [dict(id=1, image_id=1, category_id=5, instance_id=1, bbox=[1, 2, 10, 12], area=120, iscrowd=0),
            dict(id=2, image_id=2, category_id=9, instance_id=2, bbox=[5, 5, 20, 10], area=200, iscrowd=0),
            dict(id=3, image_id=4, category_id=5, instance_id=3, bbox=[0, 0, 8, 8], area=64, iscrowd=0)]
    return dict(categories=[dict(id=9, name='cat'), dict(id=5, name='dog')],
                videos=[dict(id=7, name='a'), dict(id=3, name='b')], images=images, annotations=anns)


def _build(tmp_path: Path, coco: dict, **kwargs):
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(coco))
    return DATASETS.build(dict(type='CocoVIDDataset', ann_file=str(path), pipeline=[], **kwargs))


def test_loading_orders_frames_videos_and_labels(tmp_path):
    ds = _build(tmp_path, _tiny_coco(), metainfo=dict(classes=('dog', 'cat')), test_mode=True)
    assert [ds.get_data_info(i)['video_id'] for i in range(len(ds))] == [3, 7]  # videos by id
    video = ds.get_data_info(1)
    assert [f['frame_id'] for f in video['images']] == [0, 1, 2]
    assert video['video_length'] == 3
    # Labels follow metainfo['classes'] by name: dog -> 0, cat -> 1.
    assert video['images'][0]['instances'][0]['bbox_label'] == 1
    assert video['images'][0]['instances'][0]['bbox'] == [5, 5, 25, 15]
    assert video['images'][2]['instances'][0]['bbox_label'] == 0
    assert video['images'][1]['instances'] == []  # a frame without boxes is kept
    # No classes given: the file's categories by id.
    assert _build(tmp_path, _tiny_coco(), test_mode=True).metainfo['classes'] == ('dog', 'cat')


def test_filtering_in_training(tmp_path):
    coco = _tiny_coco()
    ds = _build(tmp_path, coco, filter_cfg=dict(filter_empty_gt=True, min_size=32))
    assert [[f['frame_id'] for f in ds.get_data_info(i)['images']] for i in range(len(ds))] == [[0], [0, 2]]
    ds = _build(tmp_path, coco, filter_cfg=dict(filter_empty_gt=False, min_size=32))
    assert ds.get_data_info(1)['video_length'] == 3
    ds = _build(tmp_path, coco, metainfo=dict(classes=('cat',)), filter_cfg=dict(filter_empty_gt=True))
    assert len(ds) == 1  # the video with no cat is dropped entirely


@pytest.mark.parametrize('key', ['frame_id', 'video_id'])
def test_missing_video_fields(tmp_path, key):
    coco = _tiny_coco()
    del coco['images'][2][key]
    with pytest.raises(ValueError, match=rf'ann\.json: image id 3 .*"{key}"'):
        _build(tmp_path, coco, test_mode=True)


def test_validation_errors(tmp_path):
    coco = _tiny_coco()
    coco['images'][1]['width'] = 99
    with pytest.raises(ValueError, match='ann.json: frames of video 7 differ in size: image id 1 is 40x50, image id 2'):
        _build(tmp_path, coco, test_mode=True)
    coco = _tiny_coco()
    coco['images'][1]['frame_id'] = 2
    with pytest.raises(ValueError, match='video 7 has frame_id 2 twice'):
        _build(tmp_path, coco, test_mode=True)
    with pytest.raises(ValueError, match=r"classes \['horse'\] are not among"):
        _build(tmp_path, _tiny_coco(), metainfo=dict(classes=('horse',)), test_mode=True)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        DATASETS.build(dict(type='CocoVIDDataset', ann_file=str(tmp_path / 'nope.json'), pipeline=[]))


def test_duplicate_image_ids_are_refused(tmp_path):
    """pycocotools keeps the last image of a repeated id: a frame and its boxes would vanish without a word."""
    coco = _tiny_coco()
    coco['images'][3]['id'] = 1  # video 3's only frame takes the id of video 7's frame 2
    with pytest.raises(ValueError) as info:
        _build(tmp_path, coco, test_mode=True)
    assert str(info.value) == (f'{tmp_path / "ann.json"}: image id 1 is used twice (a/2.jpg and b/0.jpg); image ids '
                               'must be unique')


def test_key_frame_clip_sampling_fixed_schedule():
    sampler = KeyFrameClipSample(num_key_frames=2, key_frame_interval=5, random_interval=False)
    frames = list(range(30))
    assert sampler.sample_indices(frames, 17) == [10, 15, 17]
    assert sampler.sample_indices(frames, 15) == [10, 15, 15]  # the current frame is itself a key frame
    assert sampler.sample_indices(frames, 3) == [0, 0, 3]  # start of the video: the first key repeats
    assert sampler.sample_indices([0], 0) == [0, 0, 0]  # a one-frame video (ImageNet DET image)
    # Missing frames (filtered): the nearest existing frame inside the allowed range.
    gappy = [0, 1, 2, 6, 8, 9, 12]
    assert [gappy[i] for i in sampler.sample_indices(gappy, 6)] == [6, 9, 12]
    with pytest.raises(ValueError, match='key_frame_interval'):
        KeyFrameClipSample(key_frame_interval=0)


def test_key_frame_clip_sampling_random_ranges():
    random.seed(0)
    sampler = KeyFrameClipSample(num_key_frames=3, key_frame_interval=4)
    frames = list(range(0, 40))
    offsets, gaps = set(), set()
    for _ in range(400):
        current = random.randrange(len(frames))
        clip = [frames[i] for i in sampler.sample_indices(frames, current)]
        assert len(clip) == 4 and clip[-1] == frames[current]
        assert all(a <= b for a, b in zip(clip, clip[1:]))
        offsets.add(clip[-1] - clip[-2])
        for a, b in zip(clip[:-2], clip[1:-1]):
            if a == b:
                assert b == frames[0]  # duplicates only at the video's start
            else:
                gaps.add(b - a)
    assert offsets == {0, 1, 2, 3} and gaps == {1, 2, 3, 4}


def _config(data_root: Path) -> Config:
    cfg = Config.fromfile(str(BASE))
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(data_root)
    return cfg


def test_train_pipeline_contract(synth):
    cfg = _config(synth)
    assert cfg.train_dataloader.batch_size == 2
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=0)
    dataset = loader.dataset
    lengths = {dataset.get_data_info(v)['video_id']: dataset.get_data_info(v)['video_length']
               for v in range(len(dataset))}
    interval = cfg.key_frame_interval
    for video_index, frame_index in list(iter(loader.sampler))[:16]:
        sample = dataset[(video_index, frame_index)]
        inputs, track = sample['inputs'], sample['data_samples']
        assert isinstance(track, TrackDataSample)
        assert inputs.dtype == torch.uint8 and inputs.shape == (3, 3, 224, 288)
        frames = track.video_data_samples
        assert len(frames) == 3 and all(isinstance(f, DetDataSample) for f in frames)
        ids = [f.metainfo['frame_id'] for f in frames]
        current = dataset.get_data_info(video_index)['images'][frame_index]['frame_id']
        assert ids[-1] == current and ids == sorted(ids)
        assert 0 <= ids[-1] - ids[-2] <= interval - 1 and (ids[1] - ids[0] in range(1, interval + 1)
                                                           or ids[0] == ids[1] == 0)
        assert len({f.metainfo['video_id'] for f in frames}) == 1
        for f in frames:
            for key in ('video_id', 'frame_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'video_length'):
                assert key in f.metainfo, key
            assert f.metainfo['video_length'] == lengths[f.metainfo['video_id']]
            assert isinstance(f.gt_instances.bboxes, torch.Tensor) and f.gt_instances.bboxes.shape[1] == 4
            assert len(f.gt_instances.labels) == len(f.gt_instances.bboxes) == len(f.gt_instances.instances_ids)
        assert track.metainfo['key_frames_inds'] == [2] and track.metainfo['ref_frames_inds'] == [0, 1]

    batch = next(iter(loader))
    preprocessor = MODELS.build(dict(type='TrackDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                     std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32))
    out = preprocessor(batch, training=True)
    assert out['inputs'].shape == (2, 3, 3, 224, 288) and out['inputs'].dtype == torch.float32
    assert abs(float(out['inputs'].mean())) < 2
    assert out['data_samples'][0][2].metainfo['pad_shape'] == (224, 288)


def test_box_annotations_survive_pipeline(synth):
    """The packed boxes are the JSON boxes (flip-free pipeline), matched by instance id."""
    cfg = _config(synth)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.pipeline[1].transforms = [t for t in ds_cfg.pipeline[1].transforms if t.type != 'RandomFlip']
    dataset = DATASETS.build(ds_cfg)
    coco = json.loads((synth / 'annotations' / 'train.json').read_text())
    sample = dataset[(1, 5)]
    frame = sample['data_samples'].video_data_samples[-1]
    image = next(i for i in coco['images'] if i['file_name'] in frame.metainfo['img_path'])
    expected = {a['instance_id']: a['bbox'] for a in coco['annotations'] if a['image_id'] == image['id']}
    got = {int(i): b.tolist() for i, b in zip(frame.gt_instances.instances_ids, frame.gt_instances.bboxes)}
    assert got == {k: [x, y, x + w, y + h] for k, (x, y, w, h) in expected.items()}
    assert len(got) > 0


def test_test_loader_order_and_metainfo(synth):
    cfg = _config(synth)
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)
    order = []
    for batch in loader:
        assert len(batch['inputs']) == 1 and batch['inputs'][0].shape == (1, 3, 224, 288)
        frame = batch['data_samples'][0].video_data_samples[0]
        order.append((frame.metainfo['video_id'], frame.metainfo['frame_id']))
        assert frame.metainfo['video_length'] == 12
        assert 'instances' in frame.metainfo
    assert order == [(v, f) for v in (1, 2) for f in range(12)]
    assert np.array_equal(np.array(order), np.array(sorted(order)))


def test_concat_video_dataset_with_track_sampler(synth):
    cfg = _config(synth)
    train = copy.deepcopy(cfg.train_dataloader.dataset)
    val = dict(copy.deepcopy(train), ann_file='annotations/val.json')
    loader_cfg = dict(copy.deepcopy(cfg.train_dataloader), dataset=dict(type='ConcatVideoDataset',
                                                                          datasets=[train, val]))
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    dataset = loader.dataset
    assert len(dataset) == 4 and dataset.metainfo['classes'] == ('disc', 'box', 'triangle', 'star', 'cross', 'ring')
    indices = list(iter(loader.sampler))
    assert sorted(indices) == [(v, f) for v in range(4) for f in range(12)]
    sample = dataset[(3, 11)]  # the second video of the second part: val.json, video 2, last frame
    frame = sample['data_samples'].video_data_samples[-1]
    assert frame.metainfo['frame_id'] == 11 and 'Data/val/val_0001/000011.JPEG' in frame.metainfo['img_path']
    with pytest.raises(ValueError, match='different classes'):
        DATASETS.build(dict(type='ConcatVideoDataset', datasets=[
            train, dict(copy.deepcopy(train), metainfo=dict(classes=('disc',)))]))


def test_eight_key_clip_is_spaced_exactly_l_and_repeats_the_first_frame_near_the_start():
    """The paper's clip: 8 keys exactly l apart (the test-time schedule), the current frame 0..l-1 after the last;
    a clip that reaches before the video's start repeats its first frame (not refused)."""
    sampler = KeyFrameClipSample(num_key_frames=8, key_frame_interval=10, random_interval=False)
    frames = list(range(120))
    assert sampler.sample_indices(frames, 97) == [20, 30, 40, 50, 60, 70, 80, 90, 97]
    assert sampler.sample_indices(frames, 90) == [20, 30, 40, 50, 60, 70, 80, 90, 90]
    assert sampler.sample_indices(frames, 34) == [0, 0, 0, 0, 0, 10, 20, 30, 34]
    for field, kwargs in (('num_key_frames', dict(num_key_frames=0)), ('key_frame_interval',
                                                                        dict(key_frame_interval=-3))):
        with pytest.raises(ValueError, match=f'KeyFrameClipSample.{field}'):
            KeyFrameClipSample(**kwargs)


def test_subset_sampler_visits_a_fresh_share_of_the_frames_each_epoch(synth):
    from mmdet.registry import DATA_SAMPLERS

    cfg = _config(synth)
    dataset = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=0).dataset
    full = DATA_SAMPLERS.build(dict(type='TrackImgSampler', dataset=dataset, seed=3))
    half = DATA_SAMPLERS.build(dict(type='TrackImgSubsetSampler', dataset=dataset, fraction=0.5, seed=3))
    everything = set(full)
    first = list(half)
    assert len(first) == len(half) == (len(everything) + 1) // 2 and len(set(first)) == len(first)
    assert set(first) <= everything
    half.set_epoch(1)
    second = list(half)
    assert set(second) != set(first) and len(second) == len(first)
    with pytest.raises(ValueError, match='fraction must be in'):
        DATA_SAMPLERS.build(dict(type='TrackImgSubsetSampler', dataset=dataset, fraction=0))


def test_blur_last_key_frame_blurs_that_key_only_with_the_generators_blur():
    """BlurLastKeyFrame (the keyblur GRU recipe) blurs the key whose features reach the current frame, never the
    current frame or an earlier key, with one of the generator's own blurs, at the configured rate."""
    from lightflow.data.synthetic.vid_render import degrade
    from mmdet_plugin.datasets import BlurLastKeyFrame

    rng = np.random.default_rng(0)
    clip = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]  # 3 keys + the current frame
    blurs = [degrade(clip[2], n, m) for n in (3, 5, 7, 9) for m in ('h', 'v', 'defocus')]
    blur, changed = BlurLastKeyFrame(prob=0.5), 0
    random.seed(0)
    for _ in range(200):
        out = blur.transform(dict(img=[f.copy() for f in clip], key_frame_flags=[False, False, False, True]))['img']
        for i in (0, 1, 3):
            np.testing.assert_array_equal(out[i], clip[i])
        if not np.array_equal(out[2], clip[2]):
            changed += 1
            assert any(np.array_equal(out[2], b) for b in blurs)
    assert 70 <= changed <= 130  # ~half the clips
    out = BlurLastKeyFrame(prob=1.0).transform(dict(img=[f.copy() for f in clip[:3]], key_frame_flags=[False, False,
                                                                                                       True]))
    assert not np.array_equal(out['img'][1], clip[1]) and np.array_equal(out['img'][0], clip[0])
    for kwargs, field in ((dict(prob=1.5), 'prob'), (dict(lengths=(4,)), 'lengths'), (dict(modes=('x',)), 'modes')):
        with pytest.raises(ValueError, match=f'BlurLastKeyFrame: {field}'):
            BlurLastKeyFrame(**kwargs)
    with pytest.raises(ValueError, match='expects a loaded clip'):
        BlurLastKeyFrame().transform(dict(img=clip[0]))
