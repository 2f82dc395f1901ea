"""Issue 22, one flow-size rule: :func:`lightflow.sizes.flow_size` is the rule; the plugin's motions, the adaptation
configs and the demo's DIS panel take their size from it."""
from __future__ import annotations

from pathlib import Path

import pytest

from lightflow.sizes import flow_size

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('args,size', [
    ((224, 288, 0.5), (112, 144)),
    ((224, 288, 0.5, 64), (128, 128)),   # 112 -> 128 (1.75 x 64), 144 -> 128 (2.25 x 64)
    ((224, 288, 1.0, 64), (256, 256)),   # 288 / 64 = 4.5 rounds to even: 256
    ((10, 10, 0.5, 64), (64, 64)),       # never below the divisor
    ((1, 3, 0.25), (1, 1)),              # never below 1 px
])
def test_flow_size_rule(args, size):
    assert flow_size(*args) == size


@pytest.mark.parametrize('args,message', [
    ((0, 10, 0.5), r'^height must be an integer >= 1, got 0$'),
    ((10, 2.5, 0.5), r'^width must be an integer >= 1, got 2\.5$'),
    ((10, 10, 0), r'^scale must be in \(0, 4\], got 0$'),
    ((10, 10, float('nan')), r'^scale must be in \(0, 4\], got nan$'),
    ((10, 10, 0.5, 0), r'^divisor must be an integer >= 1 or None, got 0$'),
])
def test_flow_size_refuses_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        flow_size(*args)


def test_frame_motion_sizes_by_the_rule():
    from mmdet_plugin.models import FrameMotion
    for scale in (0.25, 0.5, 1.0):
        for divisor in (None, 64, 32):
            motion = FrameMotion(flow_scale=scale, resize_to_divisor=divisor is not None, size_divisor=divisor or 64)
            for h, w in ((224, 288), (37, 501), (480, 640)):
                assert motion.flow_size(h, w) == flow_size(h, w, scale, divisor)


def test_adapt_configs_derive_their_size_from_the_rule():
    from mmengine.config import Config
    for name, size in (('lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128', (128, 128)),
                       ('lightflow_w0.5_1xb16-3k-adapt_synthvid-256x256', (256, 256))):
        path = REPO / 'configs' / 'lightflow' / f'{name}.py'
        cfg = Config.fromfile(str(path))
        assert cfg.size == size == tuple(cfg.train_dataloader.dataset.datasets[0].size) \
            == tuple(cfg.val_dataloader.dataset.size)
        text = path.read_text()
        assert 'flow_size(' in text and f'size = {size}' not in text  # derived, not hand-written
        assert 'flow_size' not in cfg  # the imported function does not travel in the config


def test_demo_dis_panel_uses_the_detector_motion_flow_size():
    """``demo_video.py --show-flow`` sized DIS by flow_scale only, dropping ``resize_to_divisor`` (112x144 next to
    the detector's 128x128 on the synthvid frames)."""
    from types import SimpleNamespace

    from mmdet_plugin.demo import FlowPanels
    from mmdet_plugin.models import FrameMotion
    motion = FrameMotion(flow_scale=0.5, resize_to_divisor=True)
    panels = FlowPanels(SimpleNamespace(motion=motion))
    assert panels.dis.flow_size(224, 288) == motion.flow_size(224, 288) == (128, 128)
