"""Adaptive key frames: the 'motion' key-frame policy of FlowVideoDetector (a frame whose flow to the key moves more
than a threshold becomes a key frame, with a maximum interval), the default 'fixed' schedule, and their validation."""
from __future__ import annotations

import math

import pytest
import torch

from mmdet_plugin.evaluation.vid_report import tradeoff_series
from mmdet_plugin.models import FlowVideoDetector
from mmdet_plugin.models.key_frame_policy import FixedInterval, MotionThreshold
from tests.plugin.test_models import count_backbone_calls, frame_batch, video_detector
from tests.plugin.test_vid_tools import CONFIG_DIR, _options, synth_root  # noqa: F401 (a fixture)

HEIGHT, WIDTH = 64, 96  # input frames (already multiples of the preprocessor's pad_size_divisor 32)


def stub_flow(model: FlowVideoDetector, flows: dict[int, tuple[float, float]], grid: tuple[int, int] = (HEIGHT, WIDTH)
              ) -> list[int]:
    """Replace the flow network by a constant flow (u, v) per frame, in pixels of a ``grid``-sized output (a stand-in
    for Light Flow, whose output grid is smaller than the frame). Returns the frame ids it was called for, in order."""
    calls = []

    def forward(img, ref, metas):
        frame_id = metas[0][0]['frame_id']  # the motion contract: the frame's metainfo comes with it
        assert metas[0][1]['frame_id'] < frame_id
        calls.append(frame_id)
        u, v = flows[frame_id]
        flow = torch.empty(img.shape[0], 2, *grid)
        flow[:, 0], flow[:, 1] = u, v
        return flow

    model.motion.forward = forward
    return calls


def run_frames(model: FlowVideoDetector, frame_ids, video_id: int = 0) -> list[bool]:
    with torch.no_grad():
        for frame_id in frame_ids:
            out = model.test_step(frame_batch(model, frame_id, video_id=video_id, height=HEIGHT, width=WIDTH))
            assert 'pred_instances' in out[0].video_data_samples[0]
    return [r.is_key for r in model.frame_records]


def motion_policy(**fields) -> dict:
    return dict(type='motion', **fields)


def along(magnitude: float) -> tuple[float, float]:
    """A flow vector of the given magnitude, not along an axis (3-4-5 triangle)."""
    return 0.6 * magnitude, 0.8 * magnitude


# ---------------------------------------------------------------- the motion policy
@pytest.mark.parametrize('aggregator', [False, True])
def test_motion_policy_promotes_large_motion_and_forces_max_interval(aggregator):
    model = video_detector(aggregator=aggregator, test_cfg=dict(
        key_frame_interval=10, key_frame_policy=motion_policy(threshold=2.0, max_interval=4))).eval()
    magnitudes = {1: 0.5, 2: 1.0, 3: 3.0, 4: 0.5, 5: 0.5, 6: 0.5, 7: 0.5, 8: 2.5, 9: 2.0}
    flow_calls = stub_flow(model, {f: along(m) for f, m in magnitudes.items()})
    backbone_calls = count_backbone_calls(model)
    is_key = run_frames(model, range(10))
    # 0: first frame; 3 and 8: motion > 2 px; 7: 4 frames since the key at 3 (max_interval) whatever its motion;
    # 9: exactly the threshold is not above it.
    assert is_key == [True, False, False, True, False, False, False, True, True, False]
    assert backbone_calls[0] == 4
    # One flow per frame after the first, none for the frame forced by max_interval (it needs no flow to decide) ...
    # ... except that the GRU aggregates a key frame with the flow to the previous key: the promoted frames reuse
    # theirs, the forced one computes it.
    assert flow_calls == ([1, 2, 3, 4, 5, 6, 7, 8, 9] if aggregator else [1, 2, 3, 4, 5, 6, 8, 9])
    motion = [r.motion_px for r in model.frame_records]
    assert motion[0] is None and motion[7] is None
    assert [round(m, 5) for i, m in enumerate(motion) if i not in (0, 7)] == [magnitudes[f] for f in magnitudes
                                                                             if f != 7]


def test_motion_policy_min_interval_and_new_video():
    model = video_detector(test_cfg=dict(key_frame_interval=3, key_frame_policy=motion_policy(
        threshold=1.0, min_interval=2))).eval()
    flow_calls = stub_flow(model, {f: (5.0, 0.0) for f in range(10)})
    # 1: large motion but only 1 frame since the key; 2: promoted; 3: 1 frame since; 4: promoted.
    assert run_frames(model, range(5)) == [True, False, True, False, True]
    # A new video is a key frame without flow; max_interval defaults to key_frame_interval (3).
    model.frame_records.clear()
    stub_flow(model, {f: (0.0, 0.0) for f in range(10)})
    assert run_frames(model, range(5, 10), video_id=1) == [True, False, False, True, False]
    assert flow_calls == [1, 2, 3, 4]


@pytest.mark.parametrize('statistic,expect_key', [('mean', False), ('p90', True)])
def test_motion_statistic_mean_or_high_percentile(statistic, expect_key):
    """A quarter of the pixels move 10 px, the rest stand still: mean 2.5 px, 90th percentile 10 px; threshold 5."""
    model = video_detector(test_cfg=dict(key_frame_interval=10, key_frame_policy=motion_policy(
        threshold=5.0, statistic=statistic))).eval()

    def forward(img, ref, metas=None):
        flow = torch.zeros(1, 2, HEIGHT, WIDTH)
        flow[:, 0, :HEIGHT // 4] = 10.0
        return flow

    model.motion.forward = forward
    assert run_frames(model, range(2)) == [True, expect_key]
    assert model.frame_records[1].motion_px == pytest.approx(10.0 if statistic == 'p90' else 2.5)


@pytest.mark.parametrize('flow,threshold,expect_key,pixels', [
    ((1.0, 0.0), 3.0, True, 4.0),    # 1 px on a grid 4x narrower is 4 px of the frame
    ((1.0, 0.0), 5.0, False, 4.0),
    ((0.0, 1.0), 3.0, True, 4.0),    # same for v on a grid 4x shorter
    ((0.0, 1.0), 5.0, False, 4.0),
])
def test_flow_magnitude_is_converted_from_grid_to_frame_pixels(flow, threshold, expect_key, pixels):
    model = video_detector(test_cfg=dict(key_frame_interval=10, key_frame_policy=motion_policy(
        threshold=threshold))).eval()
    stub_flow(model, {1: flow}, grid=(HEIGHT // 4, WIDTH // 4))
    assert run_frames(model, range(2)) == [True, expect_key]
    assert model.frame_records[1].motion_px == pytest.approx(pixels)


@pytest.mark.parametrize('flow,pixels', [((1.0, 0.0), 2.0), ((0.0, 1.0), 4.0), ((1.0, 1.0), math.hypot(2, 4))])
def test_grid_conversion_scales_each_axis_by_its_own_ratio(flow, pixels):
    """A 16x48 grid of a 64x96 frame: u counts 2x, v counts 4x (swapping the ratios fails)."""
    model = video_detector(test_cfg=dict(key_frame_interval=10, key_frame_policy=motion_policy(threshold=3.0))).eval()
    stub_flow(model, {1: flow}, grid=(HEIGHT // 4, WIDTH // 2))
    assert run_frames(model, range(2)) == [True, pixels > 3.0]
    assert model.frame_records[1].motion_px == pytest.approx(pixels)


# ---------------------------------------------------------------- the fixed policy (today's schedule)
@pytest.mark.parametrize('test_cfg', [dict(key_frame_interval=3),
                                      dict(key_frame_interval=3, key_frame_policy=dict(type='fixed')),
                                      dict(key_frame_interval=3, key_frame_policy=None)])
def test_fixed_policy_reproduces_the_interval_schedule(test_cfg):
    model = video_detector(test_cfg=test_cfg).eval()
    assert model.key_frame_policy == FixedInterval(key_frame_interval=3)
    flow_calls = stub_flow(model, {f: (50.0, 50.0) for f in range(20)})  # large motion changes nothing
    backbone_calls = count_backbone_calls(model)
    run_frames(model, range(8))
    run_frames(model, range(4, 8), video_id=1)
    expected = [f % 3 == 0 for f in range(8)] + [True, False, True, False]  # video 1 starts at frame 4
    assert [r.is_key for r in model.frame_records] == expected
    assert backbone_calls[0] == sum(expected)
    assert flow_calls == [1, 2, 4, 5, 7, 5, 7]  # only non-key frames, once each
    assert all(r.motion_px is None for r in model.frame_records)


def test_policy_setter_switches_policy_and_resets_the_cache():
    model = video_detector(interval=10).eval()
    stub_flow(model, {f: (3.0, 0.0) for f in range(10)})
    run_frames(model, range(3))
    model.key_frame_policy = motion_policy(threshold=2.0, statistic='p90')
    assert model.key_frame_policy == MotionThreshold(statistic='p90', threshold=2.0, max_interval=None,
                                                     min_interval=1, key_frame_interval=10)
    model.frame_records.clear()
    assert run_frames(model, range(3, 6)) == [True, True, True]  # the cache was reset: frame 3 starts over
    model.key_frame_policy = dict(type='fixed')
    model.frame_records.clear()
    assert run_frames(model, range(6, 9)) == [True, False, False]
    with pytest.raises(ValueError, match='threshold'):
        model.key_frame_policy = motion_policy(threshold=0)
    assert model.key_frame_policy == FixedInterval(key_frame_interval=10)  # a refused policy leaves the old one in place


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize('policy,message', [
    ('motion', r'^test_cfg\.key_frame_policy must be a dict'),
    (dict(threshold=2.0), r'^test_cfg\.key_frame_policy\.type is required'),
    (dict(type='adaptive'), r"^test_cfg\.key_frame_policy\.type must be one of \('fixed', 'motion'.*\), got "
                            r"'adaptive'$"),
    # Issue 22: one name per policy; the class names are not config names.
    (dict(type='FixedInterval'), r"^test_cfg\.key_frame_policy\.type must be one of \('fixed', 'motion'.*\), got "
                                 r"'FixedInterval'$"),
    (motion_policy(threshold=-1), r'^test_cfg\.key_frame_policy\.threshold must be > 0, got -1$'),
    (motion_policy(threshold=0), r'^test_cfg\.key_frame_policy\.threshold must be > 0, got 0$'),
    (motion_policy(threshold=float('nan')), r'^test_cfg\.key_frame_policy\.threshold must be > 0, got nan$'),
    (motion_policy(threshold=float('inf')), r'^test_cfg\.key_frame_policy\.threshold must be > 0, got inf$'),
    (motion_policy(threshold='2'), r"^test_cfg\.key_frame_policy\.threshold must be > 0, got '2'$"),
    (motion_policy(), r'^test_cfg\.key_frame_policy\.threshold .*is required'),
    (motion_policy(threshold=1, max_interval=0), r'^test_cfg\.key_frame_policy\.max_interval must be an integer >= 1'),
    (motion_policy(threshold=1, max_interval=2.5), r'^test_cfg\.key_frame_policy\.max_interval must be an integer'),
    (motion_policy(threshold=1, min_interval=0), r'^test_cfg\.key_frame_policy\.min_interval must be an integer >= 1'),
    (motion_policy(threshold=1, max_interval=4, min_interval=5),
     r'^test_cfg\.key_frame_policy\.min_interval must be <= max_interval \(4\), got 5$'),
    (motion_policy(threshold=1, min_interval=11),  # max_interval defaults to key_frame_interval=10
     r'^test_cfg\.key_frame_policy\.min_interval must be <= max_interval \(default: key_frame_interval=10\), got 11$'),
    (motion_policy(threshold=1, statistic='median'),
     r"^test_cfg\.key_frame_policy\.statistic must be one of \('mean', 'p90', 'p90_relative'\), got 'median'$"),
    (motion_policy(threshold=1, interval=5), r"^test_cfg\.key_frame_policy has unknown key\(s\) \['interval'\]"),
    (dict(type='fixed', threshold=1), r"^test_cfg\.key_frame_policy has unknown key\(s\) \['threshold'\] for "
                                      r"type='fixed'"),
])
def test_bad_policy_is_refused_naming_the_field(policy, message):
    with pytest.raises(ValueError, match=message):
        video_detector(test_cfg=dict(key_frame_interval=10, key_frame_policy=policy))
    model = video_detector(interval=10)
    with pytest.raises(ValueError, match=message):
        model.key_frame_policy = policy


def test_motion_policy_needs_a_motion_module_and_room_for_min_interval():
    with pytest.raises(ValueError, match=r"^MotionThreshold\(.*\) needs a motion module"):
        video_detector(motion=None, test_cfg=dict(key_frame_interval=1, key_frame_policy=motion_policy(threshold=1)))
    model = video_detector(test_cfg=dict(key_frame_interval=10, key_frame_policy=motion_policy(
        threshold=1, min_interval=4)))
    with pytest.raises(ValueError, match=r'min_interval must be <= max_interval \(default: key_frame_interval=3\), '
                                         r'got 4'):
        model.key_frame_interval = 3
    assert model.key_frame_interval == 10


# ---------------------------------------------------------------- tools/benchmark_vid.py sweeps both policies
DFF_CONFIG = CONFIG_DIR / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py'


@pytest.fixture(scope='module')
def trained_dff(load_tool, synth_root, tmp_path_factory):
    """The synthetic DFF config trained for one tiny epoch (as tests/plugin/test_vid_tools.py does for every config)."""
    config = DFF_CONFIG
    work_dir = tmp_path_factory.mktemp('dff_policy')
    load_tool('train_vid').main([str(config), '--work-dir', str(work_dir), *_options(synth_root)])
    return config, work_dir / 'epoch_1.pth', work_dir


@pytest.mark.slow  # ~28 s (setup 15 s + call 12 s on 2 cores)
def test_benchmark_sweeps_fixed_and_motion_policies(load_tool, trained_dff, synth_root, tmp_path, capsys):
    benchmark = load_tool('benchmark_vid')
    config, ckpt, work_dir = trained_dff
    rows = benchmark.main([str(config), str(ckpt), '--intervals', '1', '3', '--policies', 'fixed', 'motion',
                           '--motion-thresholds', '0.5', '--max-interval', '3', '--out-dir', str(tmp_path),
                           '--profile-interval', '3',
                           '--work-dir', str(work_dir), '--cfg-options', f'data_root={synth_root}/'])
    assert [r['policy'] for r in rows] == ['fixed', 'fixed', 'motion']
    assert [r['key_frames'] for r in rows[:2]] == [6, 2]
    adaptive = rows[2]
    assert adaptive['threshold'] == 0.5 and adaptive['max_interval'] == 3 and adaptive['statistic'] == 'mean'
    # 6 validation frames, a key at least every 3 frames: frames 0 and 3 at least, more if the flow exceeds 0.5 px.
    assert 2 <= adaptive['key_frames'] <= 6 and adaptive['mean_motion_px'] >= 0
    table = (tmp_path / 'benchmark.md').read_text()
    sweep, profile = table.split('## Profile')
    assert sweep.count('\n| ') == 4 and '| fixed | 3 | - |' in sweep and '| motion (mean) | max 3 | 0.5 |' in sweep
    assert 'key fraction' in table.splitlines()[2]
    # Cost vs interval 1, from the same run: 1.00 for interval 1 itself, the ratio of ms/frame for interval 3.
    assert '| fixed | 1 | - |' in sweep and sweep.split('| fixed | 1 | - |')[1].split('|')[6].strip() == '1.00'
    ratio = float(sweep.split('| fixed | 3 | - |')[1].split('|')[6])
    assert ratio == pytest.approx(rows[1]['mean_ms'] / rows[0]['mean_ms'], abs=0.006)
    # The profile at interval 3: key frames run the features and no flow, non-key frames the flow and no features.
    parts = {line.split('|')[1].strip(): [float(v.replace('n/a', 'nan')) for v in line.split('|')[2:4]]
             for line in profile.splitlines() if line.startswith('| ') and not line.startswith('| part')}
    assert parts['features'][0] > 0 and parts['features'][1] == 0
    assert parts['flow'][0] == 0 and parts['flow'][1] > 0 and parts['warp'][1] > 0
    assert parts['head'][0] > 0 and parts['post-process'][1] > 0 and parts['total'][0] > parts['total'][1]
    assert math.isnan(parts['aggregate'][0])  # no GRU in this model: n/a, not 0
    series = tradeoff_series(rows)
    assert [s['points'] for s in series] == [['1', '3'], ['0.5px']]
    assert series[1]['fps'] == [adaptive['fps']] and series[1]['label'].startswith('adaptive')
    png = (tmp_path / 'benchmark.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 5000
    printed = capsys.readouterr().out
    assert 'motion threshold' not in printed and 'interval 1:' not in printed  # no progress lines off a terminal
    assert '| motion (mean) | max 3 | 0.5 |' in printed  # the table is the result: always printed


@pytest.mark.parametrize('args,message', [
    (['--motion-thresholds', '2'], '--motion-thresholds sweeps the motion policy: add --policies motion'),
    (['--policies', 'motion', '--motion-thresholds', '0'], "--motion-thresholds: must be > 0, got '0'"),
    (['--policies', 'motion', '--max-interval', '0'], '--max-interval: must be >= 1, got 0'),
    (['--policies', 'adaptive'], "--policies: 'adaptive' is not a registered key-frame policy"),
    (['--policies', 'motion', '--motion-statistic', 'median'], "--motion-statistic: .*statistic must be one of"),
])
def test_benchmark_policy_options_are_checked(load_tool, args, message, tmp_path):
    checkpoint = tmp_path / 'any.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises((ValueError, SystemExit), match=message):
        load_tool('benchmark_vid').main([str(DFF_CONFIG), str(checkpoint), *args])


# ---------------------------------------------------------------- timing lives in the tools
def test_predict_is_timed_by_the_tool_not_the_model():
    from mmdet_plugin.apis import summarize_frame_records, timed_predict

    model = video_detector(test_cfg=dict(key_frame_interval=2)).eval()
    run_frames(model, [0, 1])
    assert [r.seconds for r in model.frame_records] == [None, None]  # the model itself times nothing
    slow = model.warp.forward

    def slow_warp(*args, **kwargs):  # a non-key frame that costs at least 50 ms more
        import time
        time.sleep(0.05)
        return slow(*args, **kwargs)

    model.warp.forward = slow_warp
    with timed_predict(model):
        run_frames(model, [2, 3])
    assert 'predict' not in vars(model)  # the wrapper is gone after the block
    run_frames(model, [4])
    timed = [r for r in model.frame_records if r.seconds is not None]
    assert [(r.frame_id, r.is_key) for r in timed] == [(2, True), (3, False)]
    assert timed[1].seconds >= 0.05 and timed[0].seconds > 0
    summary = summarize_frame_records(model.frame_records)
    assert summary['frames'] == 2 and summary['key_frames'] == 1
    assert summary['nonkey_ms'] == pytest.approx(1000 * timed[1].seconds)


def test_profiled_parts_split_key_and_non_key_frames():
    from mmdet_plugin.apis import PROFILE_PARTS, profiled_parts, summarize_parts, timed_predict

    model = video_detector(aggregator=True, test_cfg=dict(key_frame_interval=3)).eval()
    slow = model.warp.forward

    def slow_warp(*args, **kwargs):  # every warp costs at least 100 ms: it must land in 'warp' and nowhere else
        import time
        time.sleep(0.1)
        return slow(*args, **kwargs)

    model.warp.forward = slow_warp
    with timed_predict(model), profiled_parts(model) as frames:
        run_frames(model, range(7))
    # Both wrappers are gone, the test's own warp patch stays.
    assert 'predict' not in vars(model) and 'extract_feat' not in vars(model.detector)
    assert 'forward' not in vars(model.motion) and vars(model.warp)['forward'] is slow_warp
    assert [f['is_key'] for f in frames] == [True, False, False, True, False, False, True]
    for i, f in enumerate(frames):
        assert f['total'] >= sum(f.get(p, 0.0) for p in PROFILE_PARTS) and f['other'] >= 0
        assert f['head'] > 0 and f['post-process'] > 0
        if f['is_key']:
            assert f['features'] > 0
            # A key frame after the first aggregates: flow + warp to the previous key state, then the GRU step.
            assert ('aggregate' in f) is (i > 0) and ('warp' in f) is (i > 0)
        else:
            assert 'features' not in f and 'aggregate' not in f and f['flow'] > 0
        if 'warp' in f:
            assert f['warp'] >= 0.1 and f['head'] < 0.1  # a busy machine may slow the head, not by 100 ms
    summary = summarize_parts(frames)
    assert summary['non-key']['features'] == 0 and summary['key']['features'] > 0
    assert summary['non-key']['warp'] >= 20.0
    # The wrappers nest: the profiler (entered last) wraps timed_predict's call, so its total contains that time.
    assert [f['total'] >= r.seconds > 0 for r, f in zip(model.frame_records, frames)] == [True] * 7


@pytest.mark.parametrize('camera,expect_key', [(0.0, True), (12.0, True), (-30.0, True)])
def test_relative_statistic_ignores_the_camera_motion(camera, expect_key):
    """Everything pans by ``camera`` px (u) and a fifth of the pixels move 8 px more (v): 'p90_relative' sees 8 px
    whatever the pan; 'mean' would see mostly the pan."""
    model = video_detector(test_cfg=dict(key_frame_interval=10, key_frame_policy=motion_policy(
        threshold=5.0, statistic='p90_relative'))).eval()

    def forward(img, ref, metas=None):
        flow = torch.zeros(1, 2, HEIGHT, WIDTH)
        flow[:, 0] = camera
        flow[:, 1, :HEIGHT // 5] = 8.0
        return flow

    model.motion.forward = forward
    assert run_frames(model, range(2)) == [True, expect_key]
    assert model.frame_records[1].motion_px == pytest.approx(8.0, abs=1e-4)


def test_relative_statistic_stays_quiet_under_a_pure_pan():
    model = video_detector(test_cfg=dict(key_frame_interval=10, key_frame_policy=motion_policy(
        threshold=1.0, statistic='p90_relative'))).eval()
    model.motion.forward = lambda img, ref, metas=None: torch.full((1, 2, HEIGHT, WIDTH), 20.0)  # 28 px of camera motion
    assert run_frames(model, range(3)) == [True, False, False]
    assert model.frame_records[1].motion_px == pytest.approx(0.0, abs=1e-4)
