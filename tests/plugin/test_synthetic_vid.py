"""The synthetic VID generator: determinism, exact boxes, visible objects, occlusion, blur, camera shake, all motion
speeds, loadable JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from lightflow.data.synthetic.vid import generate_synthetic_vid
from lightflow.data.synthetic.vid_render import (degrade, object_box, render_background, render_frame,
                                                 scene_annotations)
from lightflow.data.synthetic.vid_scene import CLASSES, POLE, SceneObject, VideoScene, build_scenes
from lightflow.data.synthetic.vid_stats import dataset_statistics

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(num_train_videos=3, num_val_videos=2, num_frames=20, height=96, width=128, seed=3)


@pytest.fixture(scope='module')
def small_set(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('synth') / 'synthetic_vid'
    return out, generate_synthetic_vid(out, **SMALL)


def _analytic_extent(label: int, radius: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) offsets of each class's shape from its centre, from the shape definitions."""
    name = CLASSES[label]
    if name in ('disc', 'cross', 'ring'):
        return -radius, -radius, radius, radius
    if name == 'box':
        return -0.85 * radius, -0.85 * radius, 0.85 * radius, 0.85 * radius
    if name == 'star':  # two equilateral triangles inscribed in the circle of radius r
        return -0.866 * radius, -radius, 0.866 * radius, radius
    return -radius, -radius, radius, 0.8 * radius  # triangle: apex (0, -r), base corners (+-r, 0.8 r)


def test_layout_and_json_contents(small_set):
    out, coco = small_set
    for split, videos in (('train', 3), ('val', 2)):
        on_disk = json.loads((out / 'annotations' / f'{split}.json').read_text())
        assert on_disk == coco[split]
        assert [c['name'] for c in on_disk['categories']] == list(CLASSES)
        assert len(on_disk['videos']) == videos
        assert len(on_disk['images']) == videos * 20
        for img in on_disk['images']:
            assert (out / img['file_name']).is_file()
            assert (img['height'], img['width']) == (96, 128)
            assert 0 <= img['frame_id'] < 20
        instance_ids = {a['instance_id'] for a in on_disk['annotations']}
        assert min(instance_ids) >= 1  # mmdet treats instance_id 0 as missing
        for ann in on_disk['annotations']:
            x, y, w, h = ann['bbox']
            assert ann['area'] == w * h and ann['iscrowd'] == 0
            assert w >= 4 and h >= 4 and x >= 0 and y >= 0 and x + w <= 128 and y + h <= 96
    assert not list(out.parent.glob('.*.tmp')), 'temp folder left behind'


def test_deterministic_and_seed_dependent(tmp_path, small_set):
    out, coco = small_set
    again = generate_synthetic_vid(tmp_path / 'again', **SMALL)
    assert again == coco
    first = sorted(p.relative_to(out) for p in out.rglob('*.JPEG'))
    assert first == sorted(p.relative_to(tmp_path / 'again') for p in (tmp_path / 'again').rglob('*.JPEG'))
    for rel in first[::7]:
        assert (out / rel).read_bytes() == (tmp_path / 'again' / rel).read_bytes()
    other = generate_synthetic_vid(tmp_path / 'other', **dict(SMALL, seed=4))
    assert other['train']['annotations'] != coco['train']['annotations']


def test_boxes_match_objects(small_set):
    out, coco = small_set
    scenes = build_scenes(3, 2, 20, 96, 128, seed=3)
    checked = 0
    for split in ('train', 'val'):
        data = coco[split]
        anns_by_image: dict[int, list] = {}
        for ann in data['annotations']:
            anns_by_image.setdefault(ann['image_id'], []).append(ann)
        instance_base = 0
        for v, scene in enumerate(scenes[split]):
            images = [i for i in data['images'] if i['video_id'] == v + 1]
            for img in images:
                t = img['frame_id']
                frame, masks = render_frame(scene, t, blur=False)
                jpeg = iio.imread(out / img['file_name']).astype(np.int32)
                background = render_background(scene, t).astype(np.int32)
                assert img['blur'] == scene.blur_at(t)[0]
                if img['blur']:  # a degraded frame: the blurred render, checked as a whole
                    err_blurred = np.abs(jpeg - degrade(frame, *scene.blur_at(t)).astype(np.int32)).mean()
                    assert err_blurred < 4
                    assert err_blurred < 0.8 * np.abs(jpeg - frame.astype(np.int32)).mean()  # really blurred
                    continue
                by_object = {a['instance_id'] - instance_base - 1: a for a in anns_by_image.get(img['id'], [])}
                for j, obj in enumerate(scene.objects):
                    ann = by_object.get(j)
                    box = object_box(masks[j])
                    visible = masks[j].copy()
                    for later in masks[j + 1:]:
                        visible &= ~later
                    if ann is None:  # dropped: a pole, (nearly) out of view, or mostly hidden
                        assert obj.label == POLE or box is None or min(box[2:]) < 4 or \
                            visible.sum() < 0.25 * masks[j].sum()
                        continue
                    assert obj.label != POLE
                    assert ann['visible'] == pytest.approx(visible.sum() / masks[j].sum(), abs=1e-3)
                    assert ann['category_id'] == obj.label + 1
                    # Exact: the annotation is the bounds of the rendered mask.
                    assert tuple(ann['bbox']) == box
                    # Independent geometry: the analytic shape extent, clipped to the image, within 1 px.
                    cx, cy = scene.centre(obj, t)
                    left, top, right, bottom = _analytic_extent(obj.label, obj.size(t))
                    expected = np.clip([cx + left, cy + top, cx + right, cy + bottom], 0, [128, 96, 128, 96])
                    x, y, w, h = ann['bbox']
                    # (Triangles and stars: thin apexes and corners can fall between pixel centres: 2 px.)
                    tolerance = 2.0 if CLASSES[obj.label] in ("triangle", "star") else 1.0
                    assert np.abs(np.array([x, y, x + w, y + h]) - expected).max() <= tolerance, (split, v, t, j)
                    # The object is drawn: its visible pixels differ clearly from the background in the JPEG.
                    if visible.sum() >= 30:
                        assert np.abs(jpeg[visible] - background[visible]).mean() > 15
                        checked += 1
                    # Outside every object the JPEG is the background (up to compression error).
                outside = ~np.logical_or.reduce(masks)
                assert np.abs(jpeg[outside] - background[outside]).mean() < 6
            instance_base += len(scene.objects)
    assert checked > 50


def test_all_three_speeds_present(small_set):
    from mmdet_plugin.evaluation import motion_ious, speed_of

    _, coco = small_set
    found = set()
    for split in ('train', 'val'):
        data = coco[split]
        frame_of = {i['id']: i['frame_id'] for i in data['images']}
        agree = []
        for video in data['videos']:
            anns = [a for a in data['annotations'] if a['video_id'] == video['id']]
            boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                              for a in anns])
            speeds = speed_of(motion_ious([frame_of[a['image_id']] for a in anns],
                                          [a['instance_id'] for a in anns], boxes))
            found |= set(speeds.tolist())
            # The generator's designed speed agrees with the measured one for most boxes.
            designed = np.array([('slow', 'medium', 'fast').index(a['speed']) for a in anns])
            agree += (designed == speeds).tolist()
        assert np.mean(agree) > 0.8, split
    assert {0, 1, 2} <= found  # (five videos of a random mix: a split alone may lack one)


def test_json_loads_in_dataset(small_set):
    from mmengine.registry import init_default_scope

    import mmdet_plugin.datasets  # noqa: F401  (registers CocoVIDDataset)
    from mmdet.registry import DATASETS

    out, coco = small_set
    init_default_scope('mmdet')
    ds = DATASETS.build(dict(type='CocoVIDDataset', data_root=str(out), ann_file='annotations/val.json',
                             data_prefix=dict(img_path=''), test_mode=True, pipeline=[]))
    assert len(ds) == 2 and ds.metainfo['classes'] == CLASSES
    assert [f['frame_id'] for f in ds.get_data_info(0)['images']] == list(range(20))
    assert sum(len(f['instances']) for v in range(2) for f in ds.get_data_info(v)['images']) == \
        len(coco['val']['annotations'])


@pytest.mark.slow  # ~9 s
def test_cli_refuses_to_overwrite(tmp_path):
    cmd = [sys.executable, str(REPO / 'tools' / 'make_synthetic_vid.py'), str(tmp_path / 'd'), '--num-videos', '1',
           '--num-val-videos', '1', '--frames', '2', '--size', '64', '64']
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'train: 1 videos, 2 frames' in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and 'exists' in again.stderr
    assert subprocess.run(cmd + ['--overwrite'], capture_output=True, timeout=60).returncode == 0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_frames'):
        generate_synthetic_vid(tmp_path / 'x', num_frames=0)
    with pytest.raises(ValueError, match='height'):
        generate_synthetic_vid(tmp_path / 'y', height=16)
    assert not (tmp_path / 'y').exists()


def test_generator_needs_no_mmdet(tmp_path):
    """The tool (measured speed mix included) imports the generator normally and never imports mmdet."""
    tool = REPO / 'tools' / 'make_synthetic_vid.py'
    argv = [str(tmp_path / 'd'), '--num-videos', '1', '--num-val-videos', '1', '--frames', '3', '--size', '64', '64']
    code = (f'import runpy, sys; runpy.run_path(r"{tool}")["main"]({argv!r}); '
            'assert not any(k.startswith("mmdet") for k in sys.modules), "mmdet imported"')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr
    assert 'measured' in done.stdout and 'importlib' not in tool.read_text()


def test_statistics_and_occlusion_in_the_set(small_set):
    _, coco = small_set
    stats = dataset_statistics(coco['train'])
    assert stats['frames'] == 60 and stats['boxes'] == len(coco['train']['annotations'])
    assert stats['boxes_per_frame'] == pytest.approx(stats['boxes'] / 60)
    # Objects overlap and frames are blurred at the configured rates (15 % of frames, give or take).
    assert 0 < stats['occluded_boxes'] < 1
    blurred = sum(bool(i['blur']) for s in ('train', 'val') for i in coco[s]['images']) / 100
    assert 0.03 < blurred < 0.35
    assert sum(stats['designed_speed'].values()) == pytest.approx(1.0)


def _still_scene(objects, shake=(0.0, 10.0, 10.0, 0.0, 0.0)) -> VideoScene:
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (140, 140, 3), dtype=np.uint8)
    return VideoScene(64, 64, 10, background, (30.0, 30.0), (0.0, 0.0), objects, shake)


def _object(label, radius, x, y, velocity=(0.0, 0.0), value=255):
    return SceneObject(label=label, speed='slow', radius=radius, start=(x, y), velocity=velocity,
                       texture=np.full((8, 8, 3), value, np.uint8))


def test_hidden_objects_are_not_annotated():
    behind = _object(0, 10.0, 32.0, 32.0)
    half_front = _object(1, 12.0, 32.0 + 12.0, 32.0, value=0)     # covers the right part of the disc
    scene = _still_scene([behind, half_front])
    _, masks = render_frame(scene, 0)
    anns = scene_annotations(scene, 0, masks, min_visible=0.25)
    assert [a['object_index'] for a in anns] == [0, 1]
    assert 0.25 < anns[0]['visible'] < 0.9 and anns[1]['visible'] == 1.0
    # The same disc behind a box that covers it all: left out; the full box of a partly hidden object is kept.
    scene = _still_scene([behind, _object(1, 14.0, 32.0, 32.0, value=0)])
    _, masks = render_frame(scene, 0)
    assert [a['object_index'] for a in scene_annotations(scene, 0, masks)] == [1]
    # A pole is never annotated, even in front.
    scene = _still_scene([behind, _object(POLE, 30.0, 5.0, 32.0)])
    _, masks = render_frame(scene, 0)
    assert [a['object_index'] for a in scene_annotations(scene, 0, masks)] == [0]


def test_camera_shake_moves_objects_and_background_together():
    obj = _object(1, 8.0, 32.0, 32.0)
    scene = _still_scene([obj], shake=(3.0, 7.0, 9.0, 0.3, 1.1))
    for t in range(1, 10):
        sx, sy = scene.shake_at(t)
        s0x, s0y = scene.shake_at(0)
        # The whole content moves by minus the camera's shake: the background by whole pixels ...
        dx, dy = int(round(30 + sx)) - int(round(30 + s0x)), int(round(30 + sy)) - int(round(30 + s0y))
        assert np.array_equal(render_background(scene, t)[8:-8, 8:-8],
                              render_background(scene, 0)[8 + dy:56 + dy, 8 + dx:56 + dx])
        # ... and the object's centre by the same offset (sub-pixel).
        cx, cy = scene.centre(obj, t)
        c0x, c0y = scene.centre(obj, 0)
        assert (cx - c0x, cy - c0y) == pytest.approx((-(sx - s0x), -(sy - s0y)))


def test_degrade_spreads_along_the_right_axis():
    img = np.zeros((9, 9, 3), np.uint8)
    img[4, 4] = 210
    h = degrade(img, 3, 'h')
    assert np.array_equal(h[4, 3:6, 0], [70, 70, 70]) and h[3, 4, 0] == 0 and h[4, 2, 0] == 0
    v = degrade(img, 3, 'v')
    assert np.array_equal(v[3:6, 4, 0], [70, 70, 70]) and v[4, 3, 0] == 0
    d = degrade(img, 3, 'defocus')
    assert d[3:6, 3:6, 0].min() > 20 and d.sum() == pytest.approx(img.sum(), rel=0.05)
    assert degrade(img, 0, '') is img
