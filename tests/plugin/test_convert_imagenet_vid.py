"""tools/convert_imagenet_vid.py on a hand-written ILSVRC-style XML set: exact CocoVID output."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TRAIN_VIDEO = 'ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000'
VAL_VIDEO = 'ILSVRC2015_val_00000000'


@pytest.fixture(scope='module')
def convert(load_tool):
    return load_tool('convert_imagenet_vid')


def _xml(folder: str, name: str, width: int, height: int, objects: list[dict]) -> str:
    body = ''
    for obj in objects:
        track = f'<trackid>{obj["trackid"]}</trackid>' if 'trackid' in obj else ''
        xmin, ymin, xmax, ymax = obj['box']
        body += (f'<object>{track}<name>{obj["wnid"]}</name><bndbox><xmax>{xmax}</xmax><xmin>{xmin}</xmin>'
                 f'<ymax>{ymax}</ymax><ymin>{ymin}</ymin></bndbox><occluded>{obj.get("occluded", 0)}</occluded>'
                 f'<generated>0</generated></object>')
    return (f'<annotation><folder>{folder}</folder><filename>{name}</filename><source><database>ILSVRC_2015'
            f'</database></source><size><width>{width}</width><height>{height}</height></size>{body}</annotation>')


@pytest.fixture()
def ilsvrc(tmp_path) -> Path:
    root = tmp_path / 'ILSVRC'
    train = root / 'Annotations' / 'VID' / 'train' / TRAIN_VIDEO
    val = root / 'Annotations' / 'VID' / 'val' / VAL_VIDEO
    det = root / 'Annotations' / 'DET' / 'train' / 'ILSVRC2014_train_0000'
    for d in (train, val, det, root / 'ImageSets' / 'VID'):
        d.mkdir(parents=True)
    # Train: an airplane (track 0) in all frames, a bird (track 1) from frame 1.
    for t in range(3):
        objs = [dict(trackid=0, wnid='n02691156', box=(10 + t, 20, 110 + t, 70))]
        if t >= 1:
            objs.append(dict(trackid=1, wnid='n01503061', box=(200, 30, 240, 60), occluded=1))
        (train / f'{t:06d}.xml').write_text(_xml(TRAIN_VIDEO, f'{t:06d}', 320, 240, objs))
    # Val: a zebra in frames 0 and 2; frame 1 has no object.
    for t in range(3):
        objs = [] if t == 1 else [dict(trackid=3, wnid='n02391049', box=(0, 5, 49, 99))]
        (val / f'{t:06d}.xml').write_text(_xml(VAL_VIDEO, f'{t:06d}', 500, 375, objs))
    # DET: image 1 has a dog and a person (not a VID class); image 2 only a person.
    (det / 'ILSVRC2014_train_00000001.xml').write_text(_xml('x', 'ILSVRC2014_train_00000001', 400, 300, [
        dict(wnid='n02084071', box=(1, 2, 101, 202)), dict(wnid='n00007846', box=(5, 5, 50, 50))]))
    (det / 'ILSVRC2014_train_00000002.xml').write_text(_xml('x', 'ILSVRC2014_train_00000002', 400, 300, [
        dict(wnid='n00007846', box=(5, 5, 50, 50))]))
    (root / 'ImageSets' / 'VID' / 'train_1.txt').write_text(f'{TRAIN_VIDEO} 1\n')
    (root / 'ImageSets' / 'VID' / 'val.txt').write_text(''.join(f'{VAL_VIDEO}/{t:06d} {t + 1}\n' for t in range(3)))
    return root


def test_vid_val_exact(convert, ilsvrc, tmp_path):
    out = tmp_path / 'ann'
    convert.main([str(ilsvrc), str(out), '--splits', 'val'])
    data = json.loads((out / 'imagenet_vid_val.json').read_text())
    assert len(data['categories']) == 30
    assert data['categories'][0] == dict(id=1, name='airplane', wnid='n02691156')
    assert data['categories'][29] == dict(id=30, name='zebra', wnid='n02391049')
    assert data['videos'] == [dict(id=1, name=f'val/{VAL_VIDEO}')]
    assert data['images'] == [
        dict(id=t + 1, file_name=f'Data/VID/val/{VAL_VIDEO}/{t:06d}.JPEG', height=375, width=500, video_id=1,
             frame_id=t) for t in range(3)]
    zebra = dict(video_id=1, category_id=30, instance_id=1, bbox=[0.0, 5.0, 49.0, 94.0], area=49.0 * 94.0,
                 iscrowd=0, occluded=0, generated=0)
    assert data['annotations'] == [dict(id=1, image_id=1, **zebra), dict(id=2, image_id=3, **zebra)]
    assert not (out / 'imagenet_vid_train.json').exists()


def test_vid_train_and_det(convert, ilsvrc, tmp_path):
    out = tmp_path / 'ann'
    results = convert.main([str(ilsvrc), str(out)])
    train = json.loads((out / 'imagenet_vid_train.json').read_text())
    assert train == results['train']
    assert train['videos'] == [dict(id=1, name=f'train/{TRAIN_VIDEO}')]
    assert [(i['frame_id'], i['width'], i['height']) for i in train['images']] == [(0, 320, 240), (1, 320, 240),
                                                                                  (2, 320, 240)]
    got = [(a['image_id'], a['category_id'], a['instance_id'], a['bbox'], a['occluded']) for a in train['annotations']]
    assert got == [(1, 1, 1, [10.0, 20.0, 100.0, 50.0], 0),
                   (2, 1, 1, [11.0, 20.0, 100.0, 50.0], 0), (2, 5, 2, [200.0, 30.0, 40.0, 30.0], 1),
                   (3, 1, 1, [12.0, 20.0, 100.0, 50.0], 0), (3, 5, 2, [200.0, 30.0, 40.0, 30.0], 1)]
    assert [a['id'] for a in train['annotations']] == [1, 2, 3, 4, 5]

    det = json.loads((out / 'imagenet_det_30cls.json').read_text())
    assert det['videos'] == [dict(id=1, name='DET/train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001')]
    assert det['images'] == [dict(id=1, file_name='Data/DET/train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001.JPEG',
                                  height=300, width=400, video_id=1, frame_id=0)]
    assert det['annotations'] == [dict(id=1, image_id=1, video_id=1, category_id=9, instance_id=1,
                                       bbox=[1.0, 2.0, 100.0, 200.0], area=20000.0, iscrowd=0, occluded=0,
                                       generated=0)]


def test_outputs_load_in_dataset(convert, ilsvrc, tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_plugin.datasets  # noqa: F401
    from mmdet.registry import DATASETS
    from lightflow.data.imagenet_vid import CATEGORIES

    out = tmp_path / 'ann'
    convert.main([str(ilsvrc), str(out)])
    init_default_scope('mmdet')
    classes = Config.fromfile(str(REPO / 'configs/vid/_base_/datasets/imagenet_vid.py')).classes
    assert classes == tuple(c['name'] for c in CATEGORIES)
    for name, videos, boxes in (('imagenet_vid_train.json', 1, 5), ('imagenet_vid_val.json', 1, 2),
                                ('imagenet_det_30cls.json', 1, 1)):
        ds = DATASETS.build(dict(type='CocoVIDDataset', ann_file=str(out / name), metainfo=dict(classes=classes),
                                 test_mode=True, pipeline=[]))
        assert len(ds) == videos
        assert sum(len(f['instances']) for f in ds.get_data_info(0)['images']) == boxes
    # The base config's training set: VID train (3 frames) + DET (1 image), through TrackImgSampler.
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(REPO / 'configs/vid/_base_/datasets/imagenet_vid.py'))
    for part in cfg.train_dataloader.dataset.datasets:
        part.data_root = str(ilsvrc)
        part.ann_file = str(out / Path(part.ann_file).name)
    loader = Runner.build_dataloader(dict(cfg.train_dataloader, num_workers=0, persistent_workers=False), seed=0)
    assert sorted(loader.sampler) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert loader.dataset.get_data_info(1)['images'][0]['img_path'].endswith(
        'Data/DET/train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001.JPEG')


def test_scan_without_image_sets_and_det_list(convert, ilsvrc, tmp_path):
    listed = convert.main([str(ilsvrc), str(tmp_path / 'a'), '--splits', 'train', 'val'])
    shutil.rmtree(ilsvrc / 'ImageSets')
    scanned = convert.main([str(ilsvrc), str(tmp_path / 'b'), '--splits', 'train', 'val'])
    assert scanned == listed
    det_list = tmp_path / 'DET_train_30classes.txt'
    det_list.write_text('train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001 1\n')
    with_list = convert.main([str(ilsvrc), str(tmp_path / 'c'), '--splits', 'det', '--det-list', str(det_list)])
    scanned_det = convert.main([str(ilsvrc), str(tmp_path / 'd'), '--splits', 'det'])
    assert with_list == scanned_det


def test_errors(convert, ilsvrc, tmp_path):
    with pytest.raises(FileNotFoundError, match='not an ILSVRC root'):
        convert.main([str(tmp_path / 'nowhere'), str(tmp_path / 'o')])
    bad = ilsvrc / 'Annotations' / 'VID' / 'val' / VAL_VIDEO / '000001.xml'
    bad.write_text(_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid=0, wnid='n00007846', box=(0, 0, 5, 5))]))
    with pytest.raises(ValueError, match=r"000001\.xml: 'n00007846' is not one of the 30 VID classes"):
        convert.main([str(ilsvrc), str(tmp_path / 'o'), '--splits', 'val'])
    bad.write_text('<annotation><size>')
    with pytest.raises(ValueError, match=r'000001\.xml: not a valid XML'):
        convert.main([str(ilsvrc), str(tmp_path / 'o'), '--splits', 'val'])
    assert not (tmp_path / 'o' / 'imagenet_vid_val.json').exists()


@pytest.mark.parametrize('xml_text, message', [
    (_xml(VAL_VIDEO, '000001', -500, 375, []),
     'image size must be positive, got <width>-500</width> <height>375</height>'),
    (_xml(VAL_VIDEO, '000001', 500, 0, []), 'image size must be positive, got <width>500</width> <height>0</height>'),
    (_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid=0, wnid='n02391049', box=(0, 0, 5, 5)),
                                          dict(trackid=1, wnid='n02391049', box=(0, 'nan', 5, 5))]),
     'object 1 has a non-finite box xmin=0 ymin=nan xmax=5 ymax=5'),
    (_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid=0, wnid='n02391049', box=(0, 0, 'inf', 5))]),
     'object 0 has a non-finite box xmin=0 ymin=0 xmax=inf ymax=5'),
    (_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid=0, wnid='n02391049', box=(10, 0, 5, 5))]),
     'object 0 has an inverted box xmin=10 ymin=0 xmax=5 ymax=5'),
    (_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid='a', wnid='n02391049', box=(0, 0, 5, 5))]),
     "object 0 <trackid> must be an integer, got 'a'"),
    (_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid=0, wnid='n02391049', box=(0, 0, 5, 5), occluded='yes')]),
     "object 0 <occluded> must be an integer, got 'yes'"),
], ids=['negative-width', 'zero-height', 'nan-box', 'inf-box', 'inverted-box', 'trackid', 'occluded'])
def test_bad_xml_values_name_the_file(convert, ilsvrc, tmp_path, xml_text, message):
    bad = ilsvrc / 'Annotations' / 'VID' / 'val' / VAL_VIDEO / '000001.xml'
    bad.write_text(xml_text)
    with pytest.raises(ValueError) as info:
        convert.main([str(ilsvrc), str(tmp_path / 'o'), '--splits', 'val'])
    assert str(info.value) == f'{bad}: {message}'
    assert not (tmp_path / 'o' / 'imagenet_vid_val.json').exists()


def test_zero_size_boxes_are_kept_and_json_is_standard(convert, ilsvrc, tmp_path):
    """A zero-width box is copied as it is (CocoVIDDataset skips boxes under 1 px); the file is strict JSON."""
    frame = ilsvrc / 'Annotations' / 'VID' / 'val' / VAL_VIDEO / '000001.xml'
    frame.write_text(_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid=3, wnid='n02391049', box=(7, 5, 7, 99))]))
    convert.main([str(ilsvrc), str(tmp_path / 'o'), '--splits', 'val'])

    def refuse(constant):
        raise AssertionError(f'non-standard JSON constant {constant}')

    data = json.loads((tmp_path / 'o' / 'imagenet_vid_val.json').read_text(), parse_constant=refuse)
    assert [(a['image_id'], a['bbox'], a['area']) for a in data['annotations']] == [
        (1, [0.0, 5.0, 49.0, 94.0], 49.0 * 94.0), (2, [7.0, 5.0, 0.0, 94.0], 0.0), (3, [0.0, 5.0, 49.0, 94.0],
                                                                                  49.0 * 94.0)]


def test_cli_errors_are_one_line(convert, ilsvrc, tmp_path):
    bad = ilsvrc / 'Annotations' / 'VID' / 'val' / VAL_VIDEO / '000001.xml'
    bad.write_text(_xml(VAL_VIDEO, '000001', 500, 375, [dict(trackid=0, wnid='n02391049', box=(0, 0, 5, 5),
                                                             occluded='1.5')]))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_imagenet_vid.py'), str(ilsvrc),
                           str(tmp_path / 'o'), '--splits', 'val'], capture_output=True, text=True, env=env,
                          timeout=120)
    assert (proc.returncode, proc.stderr.strip().splitlines()) == (
        1, [f"error: {bad}: object 0 <occluded> must be an integer, got '1.5'"]), proc.stderr[-2000:]
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValueError, match=r'^OUT_DIR .*file: exists and is a file, not a folder$'):
        convert.main([str(ilsvrc), str(tmp_path / 'file'), '--splits', 'val'])
