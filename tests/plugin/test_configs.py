"""Every config under configs/vid/ builds and runs loss, predict and tensor modes on tiny clips."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmdet_plugin  # noqa: F401  (registers the plugin)

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'vid'
CONFIGS = sorted(p for p in CONFIG_DIR.glob('*.py'))


def test_config_dir_has_the_three_synthetic_variants_and_a_two_stage_one():
    names = [p.name for p in CONFIGS]
    assert any(n.startswith('retinanet_') and n.endswith('_synthvid.py') for n in names)
    assert any(n.startswith('dff_') and n.endswith('_synthvid.py') for n in names)
    assert any(n.startswith('dff-gru_') and n.endswith('_synthvid.py') for n in names)
    assert any('faster-rcnn' in n for n in names)
    assert sum(n.endswith('_imagenetvid.py') for n in names) >= 3


def _clips(model, num_clips: int = 2, num_frames: int = 3, height: int = 64, width: int = 96) -> dict:
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for c in range(num_clips):
        frames = []
        for t in range(num_frames):
            s = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                            scale_factor=(1.0, 1.0), frame_id=2 * t, video_id=c, img_id=t))
            s.gt_instances = InstanceData(bboxes=torch.tensor([[8.0 + 2 * t, 10.0, 40.0 + 2 * t, 44.0],
                                                               [50.0, 20.0, 80.0, 52.0]]),
                                          labels=torch.tensor([0, 1]))
            frames.append(s)
        track = TrackDataSample()
        track.video_data_samples = frames
        samples.append(track)
        inputs.append(torch.randint(0, 256, (num_frames, 3, height, width), generator=gen, dtype=torch.uint8))
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_and_runs(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports['imports'] == ['mmdet_plugin'] and not cfg.custom_imports['allow_failed_imports']
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    interval = cfg.model.test_cfg.key_frame_interval
    assert (model.motion is None) == (interval == 1)

    model.train()
    losses = model(**_clips(model), mode='loss')
    total = 0.0
    for name, value in losses.items():
        if 'loss' in name:
            value = sum(value) if isinstance(value, (list, tuple)) else value
            assert torch.isfinite(value), name
            total = total + value
    total.backward()
    assert math.isfinite(float(total))

    model.eval()
    with torch.no_grad():
        outputs = model(**_clips(model, num_clips=1), mode='tensor')
        assert isinstance(outputs, tuple) and len(outputs) > 0
        model.key_frame_interval = 1 if model.motion is None else 2
        for frame_id in range(3):
            sample = DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), scale_factor=(1.0, 1.0),
                                                 frame_id=frame_id, video_id=0, img_id=frame_id))
            track = TrackDataSample()
            track.video_data_samples = [sample]
            img = torch.randint(0, 256, (1, 3, 64, 96), dtype=torch.uint8)
            out = model.test_step(dict(inputs=[img], data_samples=[track]))
            pred = out[0].video_data_samples[0].pred_instances
            assert pred.bboxes.shape[-1] == 4 and len(pred.scores) == len(pred.labels)
    expected_keys = [True, True, True] if model.motion is None else [True, False, True]
    assert [r.is_key for r in model.frame_records] == expected_keys
