"""The synthetic VID generator: determinism, exact boxes, visible objects, all motion speeds, loadable JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from mmdet_plugin.synthetic_vid import (CLASSES, build_scenes, generate_synthetic_vid, object_box, render_background,
                                        render_frame)

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(num_train_videos=3, num_val_videos=2, num_frames=20, height=96, width=128, seed=3)


@pytest.fixture(scope='module')
def small_set(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('synth') / 'synthetic_vid'
    return out, generate_synthetic_vid(out, **SMALL)


def _analytic_extent(label: int, radius: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) offsets of each class's shape from its centre, from the shape definitions."""
    name = CLASSES[label]
    if name == 'disc':
        return -radius, -radius, radius, radius
    if name == 'box':
        return -0.85 * radius, -0.85 * radius, 0.85 * radius, 0.85 * radius
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
                frame, masks = render_frame(scene, t)
                jpeg = iio.imread(out / img['file_name']).astype(np.int32)
                background = render_background(scene, t).astype(np.int32)
                by_object = {a['instance_id'] - instance_base - 1: a for a in anns_by_image.get(img['id'], [])}
                for j, obj in enumerate(scene.objects):
                    ann = by_object.get(j)
                    box = object_box(masks[j])
                    if ann is None:  # dropped: (nearly) out of view
                        assert box is None or min(box[2:]) < 4
                        continue
                    assert ann['category_id'] == obj.label + 1
                    # Exact: the annotation is the bounds of the rendered mask.
                    assert tuple(ann['bbox']) == box
                    # Independent geometry: the analytic shape extent, clipped to the image, within 1 px.
                    cx, cy = obj.centre(t)
                    left, top, right, bottom = _analytic_extent(obj.label, obj.radius)
                    expected = np.clip([cx + left, cy + top, cx + right, cy + bottom], 0, [128, 96, 128, 96])
                    x, y, w, h = ann['bbox']
                    # (Triangles: the thin apex and corners can fall between pixel centres: 2 px.)
                    tolerance = 2.0 if CLASSES[obj.label] == "triangle" else 1.0
                    assert np.abs(np.array([x, y, x + w, y + h]) - expected).max() <= tolerance, (split, v, t, j)
                    # The object is drawn: its visible pixels differ clearly from the background in the JPEG.
                    visible = masks[j].copy()
                    for later in masks[j + 1:]:
                        visible &= ~later
                    if visible.sum() >= 30:
                        assert np.abs(jpeg[visible] - background[visible]).mean() > 25
                        checked += 1
                    # Outside every object the JPEG is the background (up to compression error).
                outside = ~np.logical_or.reduce(masks)
                assert np.abs(jpeg[outside] - background[outside]).mean() < 6
            instance_base += len(scene.objects)
    assert checked > 50


def test_all_three_speeds_present(small_set):
    from mmdet_plugin.evaluation import motion_ious, speed_of

    _, coco = small_set
    for split in ('train', 'val'):
        data = coco[split]
        frame_of = {i['id']: i['frame_id'] for i in data['images']}
        found = set()
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
        assert {0, 1, 2} <= found, split
        assert np.mean(agree) > 0.8, split


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


def test_generator_needs_no_mmdet():
    code = ('import importlib.util, sys; '
            f'spec = importlib.util.spec_from_file_location("g", r"{REPO / "mmdet_plugin" / "synthetic_vid.py"}"); '
            'm = importlib.util.module_from_spec(spec); sys.modules["g"] = m; spec.loader.exec_module(m); '
            'assert not any(k.startswith(("mmdet", "torch")) for k in sys.modules), "mmdet/torch imported"')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
