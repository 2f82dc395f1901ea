"""Issue 16 (trust, round 2), the VID tools: outputs never replace inputs, metrics JSON without NaN, integer key-frame
intervals, class names from the config, short errors for bad videos; issue 15: a registered key-frame policy picked
from a config with no change to the detector."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from lightflow.frames import iter_frames
from tests.plugin.test_key_frame_policy import run_frames, stub_flow
from tests.plugin.test_models import video_detector
from tests.plugin.test_vid_tools import CONFIG_DIR, REPO

DFF_CONFIG = CONFIG_DIR / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py'


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- test_vid.py --out never replaces an input
@pytest.fixture
def vid_inputs(tmp_path) -> dict:
    """A checkpoint copy, a config copy and a data root with the config's annotation file (content is not read)."""
    root = tmp_path / 'data'
    (root / 'annotations').mkdir(parents=True)
    (root / 'annotations' / 'val.json').write_text('{"videos": []}')
    checkpoint = tmp_path / 'det_copy.pth'
    checkpoint.write_bytes(b'not really a checkpoint')
    return dict(root=root, checkpoint=checkpoint, annotation=root / 'annotations' / 'val.json')


@pytest.mark.parametrize('target', ['checkpoint', 'checkpoint_symlink', 'config', 'annotation_symlink', 'frames'])
def test_test_vid_refuses_an_out_that_is_an_input(load_tool, vid_inputs, tmp_path, target):
    checkpoint, annotation = vid_inputs['checkpoint'], vid_inputs['annotation']
    config = tmp_path / 'config_copy.py'
    config.write_text(DFF_CONFIG.read_text().replace("'./_base_/", f"'{CONFIG_DIR}/_base_/"))
    out = dict(checkpoint=checkpoint, config=config, frames=vid_inputs['root'] / 'metrics.json').get(target)
    if target.endswith('symlink'):
        out = tmp_path / 'link.json'
        out.symlink_to(checkpoint if target.startswith('checkpoint') else annotation)
    before = {p: md5(p) for p in (checkpoint, config, annotation)}
    with pytest.raises(ValueError, match=rf'^--out {out}: would overwrite the input '):
        load_tool('test_vid').main([str(config), str(checkpoint), '--out', str(out), '--work-dir', str(tmp_path / 'w'),
                                     '--cfg-options', f'data_root={vid_inputs["root"]}/'])
    assert {p: md5(p) for p in before} == before


def test_test_vid_refuses_an_out_that_is_a_base_config(load_tool, vid_inputs, tmp_path):
    """Issue 22 (low): --out naming a ``_base_`` file of the config (two levels up here) replaced it, changing every
    config built on it."""
    base = tmp_path / 'base.py'
    base.write_text(DFF_CONFIG.read_text().replace("'./_base_/", f"'{CONFIG_DIR}/_base_/"))
    (tmp_path / 'middle.py').write_text("_base_ = ['./base.py']\n")
    (tmp_path / 'sub').mkdir()
    config = tmp_path / 'sub' / 'leaf.py'
    config.write_text("_base_ = '../middle.py'\n")
    before = md5(base)
    with pytest.raises(ValueError, match=rf'^--out {base}: would overwrite the input config '):
        load_tool('test_vid').main([str(config), str(vid_inputs['checkpoint']), '--out', str(base), '--work-dir',
                                     str(tmp_path / 'w'), '--cfg-options', f'data_root={vid_inputs["root"]}/'])
    assert md5(base) == before


def test_metrics_json_holds_null_not_nan(tmp_path):
    from lightflow.cli import finite_json

    metrics = {'vid/mAP': 0.5, 'vid/mAP_slow': float('nan'), 'fps': float('inf'), 'frames': 6,
               'policy': dict(threshold=float('nan'), statistic='mean')}
    text = json.dumps(finite_json(metrics), allow_nan=False)
    assert json.loads(text) == {'vid/mAP': 0.5, 'vid/mAP_slow': None, 'fps': None, 'frames': 6,
                                'policy': dict(threshold=None, statistic='mean')}


def test_benchmark_refuses_an_out_dir_whose_outputs_are_inputs(load_tool, vid_inputs, tmp_path):
    """--out-dir where benchmark.md is a symlink to the checkpoint: refused, the checkpoint unchanged."""
    out_dir = tmp_path / 'bench'
    out_dir.mkdir()
    (out_dir / 'benchmark.md').symlink_to(vid_inputs['checkpoint'])
    before = md5(vid_inputs['checkpoint'])
    with pytest.raises(ValueError, match=r'^--out-dir .*benchmark\.md: would overwrite the input checkpoint'):
        load_tool('benchmark_vid').main([str(DFF_CONFIG), str(vid_inputs['checkpoint']), '--out-dir', str(out_dir),
                                          '--cfg-options', f'data_root={vid_inputs["root"]}/'])
    assert md5(vid_inputs['checkpoint']) == before


# ---------------------------------------------------------------- key-frame interval: integers, named field
@pytest.mark.parametrize('value,shown', [(2.7, '2.7'), ('abc', "'abc'"), (0, '0'), (True, 'True')])
def test_key_frame_interval_is_refused_not_truncated(value, shown):
    with pytest.raises(ValueError, match=rf'^test_cfg\.key_frame_interval must be an integer >= 1, got {shown}$'):
        video_detector(test_cfg=dict(key_frame_interval=value))
    model = video_detector(interval=3)
    with pytest.raises(ValueError, match=r'^test_cfg\.key_frame_interval must be an integer >= 1'):
        model.key_frame_interval = value
    assert model.key_frame_interval == 3


def test_clip_sampler_refuses_a_fractional_interval():
    from mmdet_plugin.datasets import KeyFrameClipSample

    with pytest.raises(ValueError, match=r'^KeyFrameClipSample\.key_frame_interval must be an integer >= 1, got 2\.7'):
        KeyFrameClipSample(key_frame_interval=2.7)


def test_interval_is_written_once_and_shared_with_the_clip_sampler():
    """Every motion config tests at the interval its training clips are sampled with, from one file."""
    for path in sorted(CONFIG_DIR.glob('dff*.py')):
        cfg = Config.fromfile(str(path))
        sampler = next(t for t in cfg.train_pipeline if t['type'] == 'KeyFrameClipSample')
        assert cfg.model.test_cfg.key_frame_interval == sampler['key_frame_interval'] == cfg.key_frame_interval, path
    written = [p for p in CONFIG_DIR.rglob('*.py') if 'key_frame_interval = ' in p.read_text()]
    assert [p.relative_to(CONFIG_DIR).as_posix() for p in written] == ['_base_/key_frames.py']


# ---------------------------------------------------------------- a new policy is one class
def test_a_registered_policy_is_picked_from_a_config():
    from mmdet_plugin.models.key_frame_policy import KEY_FRAME_POLICIES, KeyFrameDecision, KeyFramePolicy

    @dataclass(frozen=True, kw_only=True)
    class EveryThird(KeyFramePolicy):
        offset: int = 1

        def decide(self, frame_id, key_frame_id, flow_to_key, frame_size):
            return KeyFrameDecision(frame_id % 3 == self.offset)

    KEY_FRAME_POLICIES.register_module(module=EveryThird, force=True)
    try:
        model = video_detector(test_cfg=dict(key_frame_policy=dict(type='EveryThird', offset=2))).eval()
        assert model.key_frame_policy == EveryThird(offset=2)
        stub_flow(model, {f: (0.0, 0.0) for f in range(7)})
        assert run_frames(model, range(7)) == [True, False, True, False, False, True, False]
        with pytest.raises(ValueError, match=r"unknown key\(s\) \['phase'\] for type='EveryThird'"):
            video_detector(test_cfg=dict(key_frame_policy=dict(type='EveryThird', phase=2)))
    finally:
        KEY_FRAME_POLICIES.module_dict.pop('EveryThird', None)


def test_test_vid_takes_a_policy_from_the_command_line(load_tool, vid_inputs, tmp_path):
    from mmdet_plugin.apis import policy_from_option

    assert policy_from_option(['motion', 'threshold=4', 'statistic=p90']) == dict(type='motion', threshold=4,
                                                                                  statistic='p90')
    with pytest.raises(ValueError, match=r"^--key-frame-policy motion threshold=-1: test_cfg\.key_frame_policy\."
                                         r"threshold must be > 0, got -1$"):
        policy_from_option(['motion', 'threshold=-1'])
    with pytest.raises(ValueError, match=r"^--key-frame-policy adaptive: .*type must be one of"):
        load_tool('test_vid').main([str(DFF_CONFIG), str(vid_inputs['checkpoint']),
                                     '--key-frame-policy', 'adaptive'])


# ---------------------------------------------------------------- tool start-up and demo_video
def test_faster_coco_eval_warning_is_silenced_where_tools_start():
    from lightflow.cli import quiet_known_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        quiet_known_warnings()
        warnings.warn('faster_coco_eval is not installed, metrics will not be computed. Please install it')
        warnings.warn('another warning')
    assert [str(w.message) for w in caught] == ['another warning']


@pytest.fixture
def demo_inputs(tmp_path) -> dict:
    frames = tmp_path / 'frames'
    frames.mkdir()
    (frames / '0.png').write_bytes(b'')
    checkpoint = tmp_path / 'det.pth'
    checkpoint.write_bytes(b'weights')
    return dict(frames=frames, checkpoint=checkpoint)


@pytest.mark.parametrize('out,message', [
    ('out.txt', r'not a video file name; end it in one of \.mp4'),
    ('out', r'not a video file name'),
    ('det.pth', r'would overwrite the input checkpoint'),
])
def test_demo_video_out_is_checked_in_one_line(load_tool, demo_inputs, tmp_path, out, message):
    demo = load_tool('demo_video')
    before = md5(demo_inputs['checkpoint'])
    with pytest.raises(ValueError, match=rf'^--out .*{out}: .*{message}'):
        demo.main([str(DFF_CONFIG), str(demo_inputs['checkpoint']), str(demo_inputs['frames']),
                   '--out', str(tmp_path / out)])
    assert md5(demo_inputs['checkpoint']) == before


def test_a_text_file_named_mp4_gives_a_short_error(tmp_path):
    fake = tmp_path / 'fake.mp4'
    fake.write_text('hello, not a video\n')
    with pytest.raises(ValueError) as info:
        iter_frames(fake)  # demo_video's reader (lightflow.frames)
    message = str(info.value)
    assert message.startswith(f'{fake}: cannot read as a video (') and '\n' not in message
    assert len(message) < 250 and 'ffmpeg version' not in message and 'configuration:' not in message


def test_checkpoint_without_dataset_meta_takes_the_config_classes(tmp_path):
    """A 6-class synthetic-VID checkpoint that names no classes is drawn with the config's names, not COCO's."""
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    from mmdet_plugin.demo import init_video_detector

    init_default_scope('mmdet')
    config = CONFIG_DIR / 'retinanet_mobilenetv2_1xb2-6e_synthvid.py'
    cfg = Config.fromfile(str(config))
    checkpoint = tmp_path / 'no_meta.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), checkpoint)
    model = init_video_detector(str(config), str(checkpoint), 'cpu')
    assert tuple(model.dataset_meta['classes']) == ('disc', 'box', 'triangle', 'star', 'cross', 'ring')


def test_no_tool_edits_sys_path():
    for name in ('demo_video', 'test_vid', 'benchmark_vid', 'train_vid', 'train_flow'):
        assert 'sys.path' not in (REPO / 'tools' / f'{name}.py').read_text(), name
    assert os.path.exists(REPO / 'mmdet_plugin' / 'apis.py')
