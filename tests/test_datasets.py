"""File-index datasets: Flying Chairs (fake root and the real mini set), Sintel, KITTI 2015, pair lists."""
from __future__ import annotations

import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lightflow.data import (KITTI2015, FlowPairList, FlyingChairs, Sintel, ToTensor, parse_chairs_split,
                            sanitize_flow)
from lightflow.io import write_kitti_flow

H, W = 12, 16


def _write_flo(path: Path, flow: np.ndarray) -> None:
    """Independent .flo writer (struct.pack), so the datasets are not tested against lightflow.io alone."""
    h, w = flow.shape[:2]
    path.write_bytes(b'PIEH' + struct.pack('<ii', w, h) + struct.pack(f'<{flow.size}f', *flow.ravel().tolist()))


def _flow_for(i: int, h: int = H, w: int = W) -> np.ndarray:
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = i + 0.5
    flow[..., 1] = -i
    return flow


def _image_for(i: int, h: int = H, w: int = W) -> np.ndarray:
    return np.full((h, w, 3), 10 * i, np.uint8) + np.arange(w, dtype=np.uint8)[None, :, None]


@pytest.fixture
def chairs_root(tmp_path) -> Path:
    """5 pairs; pair i has constant flow (i + 0.5, -i); split 1 2 1 1 2."""
    data = tmp_path / 'FlyingChairs_release' / 'data'
    data.mkdir(parents=True)
    for i in range(1, 6):
        iio.imwrite(data / f'{i:05d}_img1.ppm', _image_for(i))
        iio.imwrite(data / f'{i:05d}_img2.ppm', _image_for(i + 10))
        _write_flo(data / f'{i:05d}_flow.flo', _flow_for(i))
    (data.parent / 'FlyingChairs_train_val.txt').write_text('1\n2\n1\n1\n2\n')
    return data.parent


def test_chairs_split_selection_and_values(chairs_root):
    train = FlyingChairs(chairs_root, 'train')
    val = FlyingChairs(chairs_root, 'val')
    assert [s.img1.name for s in train.samples] == ['00001_img1.ppm', '00003_img1.ppm', '00004_img1.ppm']
    assert [s.flow.name for s in val.samples] == ['00002_flow.flo', '00005_flow.flo']
    img1, img2, flow, valid = val[1]
    assert img1.dtype == torch.float32 and img1.shape == (3, H, W) and img2.shape == (3, H, W)
    assert flow.dtype == torch.float32 and flow.shape == (2, H, W)
    assert valid.dtype == torch.bool and valid.shape == (H, W) and bool(valid.all())
    assert torch.equal(flow, torch.from_numpy(_flow_for(5)).permute(2, 0, 1))
    assert torch.equal(img1, torch.from_numpy(_image_for(5)).permute(2, 0, 1).float())
    assert torch.equal(img2, torch.from_numpy(_image_for(15)).permute(2, 0, 1).float())
    raw = train.read_raw(0)
    assert raw[0].dtype == np.uint8 and raw[0].shape == (H, W, 3) and raw[2].dtype == np.float32


def test_chairs_split_file_argument_wins(chairs_root, tmp_path):
    other = tmp_path / 'custom_split.txt'
    other.write_text('2\n2\n2\n2\n1\n')
    assert len(FlyingChairs(chairs_root, 'val', split_file=other)) == 4
    assert len(FlyingChairs(chairs_root, 'val')) == 2


def test_chairs_errors(chairs_root, tmp_path):
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val'\), got 'test'"):
        FlyingChairs(chairs_root, 'test')
    with pytest.raises(FileNotFoundError, match='data/NNNNN_img1.ppm'):
        FlyingChairs(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='split file not found at .*nowhere.txt'):
        FlyingChairs(chairs_root, split_file=tmp_path / 'nowhere.txt')
    (chairs_root / 'FlyingChairs_train_val.txt').write_text('1\n2\n1\n1\n')
    with pytest.raises(ValueError, match='4 split lines but 5 pairs'):
        FlyingChairs(chairs_root)
    (chairs_root / 'FlyingChairs_train_val.txt').write_text('1\n2\n3\n1\n1\n')
    with pytest.raises(ValueError, match=r'FlyingChairs_train_val.txt:3: expected 1 \(train\) or 2'):
        FlyingChairs(chairs_root)
    (chairs_root / 'FlyingChairs_train_val.txt').unlink()
    with pytest.raises(FileNotFoundError, match='FlyingChairs_train_val.txt'):
        FlyingChairs(chairs_root)
    (chairs_root / 'data' / '00003_flow.flo').unlink()
    with pytest.raises(FileNotFoundError, match='00003_flow.flo'):
        FlyingChairs(chairs_root)


def test_chairs_pair_of_different_sizes(chairs_root):
    iio.imwrite(chairs_root / 'data' / '00004_img2.ppm', _image_for(1, H + 2, W))
    ds = FlyingChairs(chairs_root, 'train')
    ds[0]  # other pairs still load
    with pytest.raises(ValueError, match='00004_img1.ppm is .*00004_img2.ppm is'):
        ds[2]


def test_flow_size_must_match_images(chairs_root):
    _write_flo(chairs_root / 'data' / '00001_flow.flo', _flow_for(1, H, W + 1))
    with pytest.raises(ValueError, match='00001_flow.flo: flow size'):
        FlyingChairs(chairs_root, 'train')[0]


def test_invalid_flow_is_masked_and_zeroed():
    flow = np.ones((3, 4, 2), np.float32)
    flow[0, 0, 0] = np.nan
    flow[0, 1, 1] = np.inf
    flow[1, 1, 0] = 1e9
    flow[1, 2, 1] = -2e9
    flow[2, 3] = 999.0  # large but legitimate
    out, valid = sanitize_flow(flow)
    expected = np.ones((3, 4), bool)
    expected[0, 0] = expected[0, 1] = expected[1, 1] = expected[1, 2] = False
    np.testing.assert_array_equal(valid, expected)
    assert (out[~valid] == 0).all() and (out[2, 3] == 999.0).all() and np.isfinite(out).all()
    _, valid2 = sanitize_flow(flow, np.zeros((3, 4), bool))
    assert not valid2.any()


def test_official_split_counts(shared_data):
    split = parse_chairs_split(shared_data / 'FlyingChairs_train_val.txt')
    assert len(split) == 22872 and split.count(1) == 22232 and split.count(2) == 640


def test_mini_chairs_loads(shared_data):
    root = shared_data / 'FlyingChairs_mini'
    train, val = FlyingChairs(root, 'train'), FlyingChairs(root, 'val')
    assert len(train) == 3 and len(val) == 2
    for ds in (train, val):
        for img1, img2, flow, valid in ds:
            assert img1.shape == img2.shape == (3, 384, 512) and flow.shape == (2, 384, 512)
            assert bool(valid.all()) and bool(torch.isfinite(flow).all())
            assert 0 < flow.abs().max() < 100
            assert 0 <= img1.min() and img1.max() <= 255 and img1.std() > 10


def test_rubberwhale_unknown_flow_is_invalid(shared_data):
    folder = shared_data / 'middlebury' / 'RubberWhale'
    ds = FlowPairList([(folder / 'frame10.png', folder / 'frame11.png', folder / 'flow10.flo')])
    img1, _, flow, valid = ds[0]
    assert img1.shape == (3, 388, 584) and flow.shape == (2, 388, 584)
    raw_unknown = np.abs(np.fromfile(folder / 'flow10.flo', '<f4', offset=12).reshape(388, 584, 2)).max(-1) >= 1e9
    assert raw_unknown.sum() > 1000  # RubberWhale has large unknown regions
    np.testing.assert_array_equal(valid.numpy(), ~raw_unknown)
    assert (flow[:, ~valid] == 0).all() and flow.abs().max() < 20


def test_pair_list_checks_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'pairs\[0\]: no such file .*a.png'):
        FlowPairList([(tmp_path / 'a.png', tmp_path / 'b.png', None)])
    with pytest.raises(ValueError, match=r'pairs\[0\] must be'):
        FlowPairList([(tmp_path / 'a.png', tmp_path / 'b.png')])


def _sintel_root(root: Path) -> Path:
    for split in ('training', 'test'):
        for pass_name in ('clean', 'final'):
            for scene, n in (('alley_1', 3), ('bamboo_2', 2)):
                d = root / split / pass_name / scene
                d.mkdir(parents=True)
                for i in range(1, n + 1):
                    iio.imwrite(d / f'frame_{i:04d}.png', _image_for(i))
    for scene, n in (('alley_1', 3), ('bamboo_2', 2)):
        d = root / 'training' / 'flow' / scene
        d.mkdir(parents=True)
        for i in range(1, n):
            _write_flo(d / f'frame_{i:04d}.flo', _flow_for(i + (10 if scene == 'bamboo_2' else 0)))
    return root


def test_sintel(tmp_path):
    root = _sintel_root(tmp_path / 'Sintel')
    ds = Sintel(root, 'training', 'final')
    assert len(ds) == 3
    assert [(s.img1.parent.name, s.img1.name, s.img2.name) for s in ds.samples] == [
        ('alley_1', 'frame_0001.png', 'frame_0002.png'), ('alley_1', 'frame_0002.png', 'frame_0003.png'),
        ('bamboo_2', 'frame_0001.png', 'frame_0002.png')]
    assert ds.samples[0].img1.parts[-3] == 'final'
    _, _, flow, valid = ds[2]
    assert torch.equal(flow, torch.from_numpy(_flow_for(11)).permute(2, 0, 1)) and bool(valid.all())
    test = Sintel(root, 'test', 'clean')
    img1, _, flow, valid = test[0]
    assert img1.shape == (3, H, W) and not valid.any() and not flow.any()
    with pytest.raises(ValueError, match=r"pass_name must be one of \('clean', 'final'\)"):
        Sintel(root, pass_name='albedo')
    with pytest.raises(ValueError, match=r"split must be one of \('training', 'test'\)"):
        Sintel(root, split='train')
    with pytest.raises(FileNotFoundError, match='frame_XXXX.png'):
        Sintel(tmp_path / 'nothing')
    (root / 'training' / 'flow' / 'alley_1' / 'frame_0002.flo').unlink()
    with pytest.raises(FileNotFoundError, match='frame_0002.flo'):
        Sintel(root)


def test_kitti2015(tmp_path):
    root = tmp_path / 'KITTI'
    (root / 'training' / 'image_2').mkdir(parents=True)
    (root / 'training' / 'flow_occ').mkdir(parents=True)
    (root / 'testing' / 'image_2').mkdir(parents=True)
    valid = np.zeros((H, W), bool)
    valid[::2, ::3] = True
    flow = np.random.default_rng(0).uniform(-50, 50, (H, W, 2)).astype(np.float32)
    for split in ('training', 'testing'):
        for i in range(2):
            iio.imwrite(root / split / 'image_2' / f'{i:06d}_10.png', _image_for(i))
            iio.imwrite(root / split / 'image_2' / f'{i:06d}_11.png', _image_for(i + 1))
    for i in range(2):
        write_kitti_flow(root / 'training' / 'flow_occ' / f'{i:06d}_10.png', flow * (i + 1) * 0.5, valid)
    ds = KITTI2015(root)
    assert len(ds) == 2 and ds.samples[1].img2.name == '000001_11.png'
    _, _, got, got_valid = ds[1]
    np.testing.assert_array_equal(got_valid.numpy(), valid)
    got = got.permute(1, 2, 0).numpy()
    assert np.abs(got[valid] - flow[valid]).max() <= 1 / 128 + 1e-6
    assert (got[~valid] == 0).all()  # sparse GT: no value where KITTI has none
    img1, _, tflow, tvalid = KITTI2015(root, 'testing')[0]
    assert img1.shape == (3, H, W) and not tvalid.any() and not tflow.any()
    with pytest.raises(ValueError, match=r"split must be one of \('training', 'testing'\)"):
        KITTI2015(root, 'test')
    (root / 'training' / 'flow_occ' / '000001_10.png').unlink()
    with pytest.raises(FileNotFoundError, match='flow_occ/000001_10.png'):
        KITTI2015(root)


def test_custom_transforms_receive_raw_numpy(chairs_root):
    seen = {}

    def spy(img1, img2, flow, valid):
        seen.update(img1=img1, flow=flow, valid=valid)
        return ToTensor()(img1, img2, flow, valid)

    FlyingChairs(chairs_root, transforms=spy)[0]
    assert seen['img1'].dtype == np.uint8 and seen['img1'].shape == (H, W, 3)
    assert seen['flow'].dtype == np.float32 and seen['flow'].shape == (H, W, 2) and seen['valid'].dtype == bool


def test_one_class_per_name():
    """Issue 15, item 4: no two classes of the project share a name (there were two ``FlowDataset``); issue 22: the
    engine's wrapper has one name, ``PackedFlowDataset`` (the line limit is checked in tests/test_layout.py)."""
    import ast
    from collections import defaultdict

    import lightflow.engine
    from lightflow.data import FlowDataset as FileIndexBase
    from lightflow.engine import PackedFlowDataset, registry

    repo = Path(__file__).resolve().parents[1]
    homes: dict[str, list[str]] = defaultdict(list)
    for package in ('lightflow', 'mmdet_plugin', 'tools'):
        for path in sorted((repo / package).rglob('*.py')):
            text = path.read_text()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef):
                    homes[node.name].append(str(path.relative_to(repo)))
    assert {name: files for name, files in homes.items() if len(files) > 1} == {}
    assert registry.DATASETS.get('PackedFlowDataset') is PackedFlowDataset
    assert registry.DATASETS.get('FlowDataset') is None
    assert not hasattr(lightflow.engine, 'FlowDataset') and FileIndexBase.__name__ == 'FlowDataset'


def test_a_dataset_registered_outside_lightflow_is_built_by_name(tmp_path):
    """Issue 22: the datasets a flow config may name come from a registry, not an allow-list, so a user's own dataset
    (and transform) works in PackedFlowDataset without editing lightflow."""
    import numpy as np
    import pytest

    from lightflow.data import FLOW_DATASETS, FLOW_TRANSFORMS, register_flow_dataset, register_flow_transform
    from lightflow.engine import PackedFlowDataset

    @register_flow_dataset
    class MyPairs:
        def __init__(self, value: float, transforms=None):
            self.value, self.transforms = value, transforms

        def __len__(self):
            return 2

        def __getitem__(self, i):
            img = np.full((8, 8, 3), self.value + i, np.uint8)
            return self.transforms(img, img, np.full((8, 8, 2), 1.5, np.float32), np.ones((8, 8), bool))

    @register_flow_transform
    class AddOne:
        def __call__(self, img1, img2, flow, valid):
            return img1 + 1, img2, flow, valid

    try:
        ds = PackedFlowDataset(dict(type='MyPairs', value=3), transforms=[dict(type='AddOne'), dict(type='ToTensor')])
        item = ds[1]
        assert float(item['inputs'][0].mean()) == 5.0 and float(item['inputs'][1].mean()) == 4.0
        assert float(item['data_samples'].flow.mean()) == 1.5
        with pytest.raises(ValueError, match=r"unknown dataset type 'Nope'; choose from \[.*'FlyingChairs'.*'MyPairs'"):
            PackedFlowDataset(dict(type='Nope'))
        with pytest.raises(ValueError, match="a flow dataset named 'MyPairs' is already registered"):
            register_flow_dataset(type('MyPairs', (), {}))
    finally:
        FLOW_DATASETS.pop('MyPairs', None)
        FLOW_TRANSFORMS.pop('AddOne', None)
