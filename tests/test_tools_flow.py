"""tools/train_flow.py -> tools/test_flow.py -> tools/demo_flow.py end to end on tiny settings, plus real samples."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lightflow import estimate_flow, read_flo, read_image
from lightflow.engine import load_lightflow_checkpoint
from lightflow.metrics import flow_metrics

REPO = Path(__file__).resolve().parents[1]
SYNTH_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb8-2k_synthetic.py'
CHAIRS_W05_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_2xb64-403e_flyingchairs.py'
TINY = ['train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4',
        'train_dataloader.batch_size=2', 'train_dataloader.dataset.dataset.size=(64,64)',
        'train_dataloader.dataset.dataset.num_samples=8', 'val_dataloader.dataset.dataset.size=(64,64)',
        'val_dataloader.dataset.dataset.num_samples=2', 'test_dataloader.dataset.dataset.size=(64,64)',
        'test_dataloader.dataset.dataset.num_samples=2']
NO_WORKERS = ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
              'test_dataloader.batch_size=1']


@pytest.fixture(scope='module')
def trained(load_tool, tmp_path_factory) -> Path:
    """A w0.5 checkpoint from a 4-iteration train_flow.py run on tiny synthetic data."""
    work = tmp_path_factory.mktemp('train')
    load_tool('train_flow').main([str(SYNTH_CFG), '--work-dir', str(work), '--cfg-options', *TINY])
    ckpt = work / 'iter_4.pth'
    assert ckpt.is_file() and (work / 'last_checkpoint').is_file()
    assert list(work.glob('vis/iter_4/*.png')) and list(work.glob('*/vis_data/events.out.tfevents.*'))
    return ckpt


@pytest.mark.slow  # ~23 s
def test_train_then_test_on_synthetic(load_tool, trained, tmp_path):
    metrics = load_tool('test_flow').main([str(SYNTH_CFG), str(trained), '--work-dir', str(tmp_path),
                                       '--cfg-options', *TINY])
    assert set(metrics) >= {'EPE', '1px', '3px', '5px', 'Fl-all'}
    assert np.isfinite(metrics['EPE']) and 0 <= metrics['1px'] <= metrics['3px'] <= metrics['5px'] <= 1


@pytest.mark.slow  # ~24 s: the Chairs-config test on the real samples
def test_test_flow_on_chairs_mini(load_tool, trained, tmp_path, shared_data):
    root = shared_data / 'FlyingChairs_mini'
    metrics = load_tool('test_flow').main([str(CHAIRS_W05_CFG), str(trained), '--work-dir', str(tmp_path),
                                       '--cfg-options', f'data_root={root}', *NO_WORKERS])
    # Same numbers as the metric computed by hand on the two val pairs (per-pixel average over both).
    net = load_lightflow_checkpoint(trained)
    preds, gts = [], []
    for stem in ('00004', '00005'):
        img1, img2 = (read_image(root / 'data' / f'{stem}_img{k}.ppm') for k in (1, 2))
        with torch.inference_mode():
            preds.append(estimate_flow(net, img1, img2)[0])
        gts.append(torch.from_numpy(read_flo(root / 'data' / f'{stem}_flow.flo')).permute(2, 0, 1))
    ref = flow_metrics(torch.stack(preds), torch.stack(gts))
    assert metrics['EPE'] == pytest.approx(ref['EPE'], rel=1e-3)
    assert metrics['Fl-all'] == pytest.approx(ref['Fl-all'], abs=0.05)


def test_test_flow_on_rubberwhale_excludes_unknown(load_tool, trained, tmp_path, shared_data):
    rw = shared_data / 'middlebury' / 'RubberWhale'
    cfg = tmp_path / 'rubberwhale.py'
    cfg.write_text(
        f"_base_ = {str(CHAIRS_W05_CFG)!r}\n"
        "test_dataloader = dict(num_workers=0, persistent_workers=False, batch_size=1, dataset=dict(\n"
        "    dataset=dict(_delete_=True, type='FlowPairList',\n"
        f"                 pairs=[({str(rw / 'frame10.png')!r}, {str(rw / 'frame11.png')!r}, "
        f"{str(rw / 'flow10.flo')!r})])))\n")
    metrics = load_tool('test_flow').main([str(cfg), str(trained), '--work-dir', str(tmp_path / 'work')])
    gt = torch.from_numpy(read_flo(rw / 'flow10.flo')).permute(2, 0, 1)
    assert (gt.abs() >= 1e9).any()  # the sample really has unknown pixels
    net = load_lightflow_checkpoint(trained)
    with torch.inference_mode():
        pred = estimate_flow(net, read_image(rw / 'frame10.png'), read_image(rw / 'frame11.png'))[0]
    ref = flow_metrics(pred, gt)
    assert np.isfinite(metrics['EPE']) and metrics['EPE'] < 100
    assert metrics['EPE'] == pytest.approx(ref['EPE'], rel=1e-3)


def test_demo_on_pair_and_video(load_tool, trained, tmp_path, shared_data):
    demo = load_tool('demo_flow')
    rw = shared_data / 'middlebury' / 'RubberWhale'
    written = demo.main([str(trained), str(rw / 'frame10.png'), str(rw / 'frame11.png'), '--out', str(tmp_path / 'p')])
    assert written == [tmp_path / 'p' / 'frame10.flo']
    assert read_flo(written[0]).shape == (388, 584, 2)
    assert read_image(tmp_path / 'p' / 'frame10.png').shape == (388, 584, 3)

    video = shared_data / 'video' / 'demo.mp4'
    written = demo.main([str(trained), str(video), '--out', str(tmp_path / 'v'), '--width', '0.5', '--max-pairs', '2'])
    assert [f.name for f in written] == ['demo_000000.flo', 'demo_000001.flo']  # 1080p on CPU: 2 of the 7 pairs
    for f in written:
        assert read_flo(f).shape == (1080, 1920, 2) and f.with_suffix('.png').is_file()
    assert (tmp_path / 'v' / 'demo_flow.mp4').stat().st_size > 0
    assert not [p for p in (tmp_path / 'v').iterdir() if p.name.startswith('.')]  # no temp files left


def test_demo_errors(load_tool, trained, tmp_path, shared_data):
    demo = load_tool('demo_flow')
    rw = shared_data / 'middlebury' / 'RubberWhale'
    chairs = shared_data / 'FlyingChairs_mini' / 'data' / '00001_img1.ppm'
    with pytest.raises(ValueError, match=r'is 584x388 but .* is 512x384'):
        demo.main([str(trained), str(rw / 'frame10.png'), str(chairs), '--out', str(tmp_path)])
    with pytest.raises(ValueError, match=r'holds a Light Flow of width_mult=0\.5, but width 1 was asked'):
        demo.main([str(trained), str(rw / 'frame10.png'), str(rw / 'frame11.png'), '--out', str(tmp_path),
                   '--width', '1.0'])
    empty = tmp_path / 'empty.mp4'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.mp4'):
        demo.main([str(trained), str(empty), '--out', str(tmp_path)])
    with pytest.raises(ValueError, match='names no checkpoint'):
        demo.main([str(SYNTH_CFG), str(rw / 'frame10.png'), str(rw / 'frame11.png'), '--out', str(tmp_path)])
    # Grey and RGBA frames are converted: a folder of one grey and one RGBA frame works.
    import imageio.v3 as iio

    frames = tmp_path / 'frames'
    frames.mkdir()
    rgb = read_image(rw / 'frame10.png')[:64, :96]
    iio.imwrite(frames / 'a.png', rgb.mean(axis=2).astype(np.uint8))
    iio.imwrite(frames / 'b.png', np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    assert read_flo(demo.main([str(trained), str(frames), '--out', str(tmp_path / 'f')])[0]).shape == (64, 96, 2)


def test_cli_errors_are_one_line(load_tool, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'demo_flow.py'), str(tmp_path / 'missing.pth'),
                           'a.png', 'b.png', '--out', str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ['error: a.png: no such file or folder']
    with pytest.raises(FileNotFoundError, match='no such config file'):
        load_tool('train_flow').main([str(tmp_path / 'nope.py')])


def test_video_plugin_loads_a_train_flow_checkpoint(trained):
    """The mmdet plugin's motion module reads a real train_flow.py checkpoint (mmengine meta + message hub)."""
    from mmdet_plugin.models import LightFlowMotion

    motion = LightFlowMotion(width_mult=0.5, pretrained=str(trained))
    motion.init_weights()
    expected = load_lightflow_checkpoint(trained).state_dict()
    loaded = motion.flownet.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    with pytest.raises(ValueError, match=r'width_mult=0\.5.*width_mult=1'):
        LightFlowMotion(width_mult=1.0, pretrained=str(trained)).init_weights()
