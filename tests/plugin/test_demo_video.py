"""tools/demo_video.py with a tiny randomly initialised mmdet RetinaNet on the real demo clip."""
from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]

CLASSES = ('disc', 'box', 'triangle')


@pytest.fixture(scope='module')
def demo(load_tool):
    return load_tool('demo_video')


def _tiny_retinanet_config() -> Config:
    return Config(dict(
        default_scope='mmdet',
        model=dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
            backbone=dict(type='MobileNetV2', widen_factor=0.5, out_indices=(2, 4)),
            neck=dict(type='FPN', in_channels=[16, 48], out_channels=32, num_outs=2),
            bbox_head=dict(type='RetinaHead', num_classes=len(CLASSES), in_channels=32, feat_channels=32,
                           stacked_convs=1,
                           anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                                                 ratios=[1.0], strides=[8, 16]),
                           bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                           target_stds=[1.0] * 4),
                           loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25),
                           loss_bbox=dict(type='L1Loss')),
            test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                          max_per_img=20)),
        test_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(256, 144), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                  'scale_factor')),
        ]))))


@pytest.fixture(autouse=True)
def _one_thread():
    # On a loaded 2-core machine two intra-op threads made this tiny model ~10x slower (spin-waiting).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def detector(tmp_path_factory) -> tuple[Path, Path]:
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS

    init_default_scope('mmdet')
    folder = tmp_path_factory.mktemp('demo_model')
    cfg = _tiny_retinanet_config()
    config_path = folder / 'tiny_retinanet.py'
    cfg.dump(str(config_path))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # A strong positive bias: the random head then scores boxes high, so --score-thr decides what is drawn.
    torch.nn.init.constant_(model.bbox_head.retina_cls.bias, 2.0)
    checkpoint = folder / 'tiny_retinanet.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=CLASSES))), checkpoint)
    return config_path, checkpoint


def test_demo_on_real_clip(demo, shared_data, detector, tmp_path):
    video = shared_data / 'video' / 'demo.mp4'
    if not video.is_file():
        pytest.skip(f'{video} not found')
    config, checkpoint = detector
    drawn = tmp_path / 'out' / 'drawn.mp4'
    stats = demo.main([str(config), str(checkpoint), str(video), '--out', str(drawn), '--score-thr', '0.5'])
    plain = tmp_path / 'plain.mp4'
    demo.main([str(config), str(checkpoint), str(video), '--out', str(plain), '--score-thr', '1.0'])
    assert stats['frames'] == 8 and stats['model_fps'] > 0
    source = list(iio.imiter(video))
    out_drawn, out_plain = list(iio.imiter(drawn)), list(iio.imiter(plain))
    assert len(out_drawn) == len(out_plain) == 8
    assert all(f.shape == (1080, 1920, 3) for f in out_drawn + out_plain)
    assert iio.immeta(drawn)['fps'] == pytest.approx(3.0)
    # Nothing above a score of 1: the input comes back (up to the codec); with boxes drawn, many pixels change.
    plain_err = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(out_plain, source)])
    drawn_err = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(out_drawn, source)])
    assert plain_err < 4 and drawn_err > plain_err + 1
    assert not list(tmp_path.rglob('.*.tmp*')), 'temp file left behind'


def test_demo_on_frame_folder(demo, shared_data, detector, tmp_path):
    frames = shared_data / 'video' / 'ILSVRC2015_val_00007010'
    if not frames.is_dir():
        pytest.skip(f'{frames} not found')
    config, checkpoint = detector
    out = tmp_path / 'folder.mp4'
    stats = demo.main([str(config), str(checkpoint), str(frames), '--out', str(out), '--max-frames', '3',
                       '--fps', '5'])
    assert stats['frames'] == 3
    written = list(iio.imiter(out))
    assert len(written) == 3 and written[0].shape == (720, 1280, 3)


def test_no_frames_errors(demo, detector, tmp_path):
    config, checkpoint = detector
    empty_dir = tmp_path / 'no_frames'
    empty_dir.mkdir()
    with pytest.raises(ValueError, match='no_frames: no frames could be read'):
        demo.main([str(config), str(checkpoint), str(empty_dir), '--out', str(tmp_path / 'a.mp4')])
    empty_file = tmp_path / 'empty.mp4'
    empty_file.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.mp4'):
        demo.main([str(config), str(checkpoint), str(empty_file), '--out', str(tmp_path / 'b.mp4')])
    with pytest.raises(FileNotFoundError, match='missing.mp4'):
        demo.main([str(config), str(checkpoint), str(tmp_path / 'missing.mp4'), '--out', str(tmp_path / 'c.mp4')])
    assert not (tmp_path / 'a.mp4').exists() and not (tmp_path / 'b.mp4').exists()


def test_demo_with_video_detector(demo, detector, tmp_path):
    """The video path (PackTrackInputs, key-frame cache) with the plugin's DFF config, random weights."""
    config = REPO / 'configs' / 'vid' / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py'
    if not config.is_file():
        pytest.skip(f'{config} not found')
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    from lightflow.data.synthetic.vid import generate_synthetic_vid

    init_default_scope('mmdet')
    cfg = Config.fromfile(str(config))
    model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'dff.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=cfg.classes))), checkpoint)
    generate_synthetic_vid(tmp_path / 'synth', num_train_videos=1, num_val_videos=1, num_frames=5)
    out = tmp_path / 'dff.mp4'
    stats = demo.main([str(config), str(checkpoint), str(tmp_path / 'synth' / 'Data' / 'val' / 'val_0000'),
                       '--out', str(out), '--key-frame-interval', '2', '--score-thr', '0.05'])
    assert stats['frames'] == 5
    written = list(iio.imiter(out))
    assert len(written) == 5 and written[0].shape == (224, 288, 3)


def test_checkpoint_of_another_model_is_refused(detector, tmp_path):
    """A Light Flow checkpoint for a detector config: refused in one line (it used to run a random detector)."""
    import os
    import subprocess
    import sys

    import lightflow

    config, _ = detector
    flow_ckpt = tmp_path / 'lightflow.pth'
    torch.save(dict(state_dict=lightflow.lightflow_w0_5().state_dict()), flow_ckpt)
    frames = tmp_path / 'frames'
    frames.mkdir()
    iio.imwrite(frames / '0.png', np.zeros((32, 48, 3), np.uint8))
    out = tmp_path / 'out.mp4'
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'demo_video.py'), str(config), str(flow_ckpt),
                           str(frames), '--out', str(out)], capture_output=True, text=True, env=env, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert re.fullmatch(rf'error: {re.escape(str(flow_ckpt))}: (\d+) of \1 model weights missing \(e\.g\. '
                        rf'backbone\.conv1\.conv\.weight\); is it a checkpoint of {re.escape(str(config))}\?',
                        lines[0]), lines[0]
    assert not out.exists()


def test_demo_show_flow_adds_motion_and_dis_panels(demo, detector, tmp_path):
    """--show-flow: [frame | detector's flow to the key | DIS MEDIUM flow to the key]; white (no motion) on key frames,
    colour where the synthetic camera pans on the others."""
    config = REPO / 'configs' / 'vid' / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py'
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    from lightflow.data.synthetic.vid import generate_synthetic_vid

    init_default_scope('mmdet')
    cfg = Config.fromfile(str(config))
    model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'dff.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=cfg.classes))), checkpoint)
    generate_synthetic_vid(tmp_path / 'synth', num_train_videos=1, num_val_videos=1, num_frames=4, seed=5)
    out = tmp_path / 'flow.mp4'
    stats = demo.main([str(config), str(checkpoint), str(tmp_path / 'synth' / 'Data' / 'val' / 'val_0000'),
                       '--out', str(out), '--key-frame-interval', '3', '--show-flow'])
    written = [f.astype(np.float64) for f in iio.imiter(out)]
    assert stats['frames'] == 4 and written[0].shape == (224, 864, 3)
    assert written[0][:, 288:].mean() > 245 and written[3][:, 288:].mean() > 245  # key frames 0 and 3
    dis = written[2][40:, 576:]  # below the label: frame 2 -> key 0, two frames of camera pan
    assert dis.mean() < 240 and dis.std() > 3
    with pytest.raises(ValueError, match='--show-flow: .* has no motion module'):
        single = REPO / 'configs' / 'vid' / 'retinanet_mobilenetv2_1xb2-6e_synthvid.py'
        sc = Config.fromfile(str(single))
        torch.save(dict(state_dict=MODELS.build(sc.model).state_dict(),
                        meta=dict(dataset_meta=dict(classes=sc.classes))), tmp_path / 'single.pth')
        demo.main([str(single), str(tmp_path / 'single.pth'), str(tmp_path / 'synth' / 'Data' / 'val' / 'val_0000'),
                   '--out', str(tmp_path / 'x.mp4'), '--show-flow'])
