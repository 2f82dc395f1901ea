"""End to end: a tiny synthetic VID set, train_vid.py for a few iterations per synthetic config, test_vid.py and
benchmark_vid.py on the result, and the one-line errors of the tools."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs' / 'vid'
SYNTH_CONFIGS = sorted(CONFIG_DIR.glob('*_synthvid.py'))


@pytest.fixture(scope='module')
def synth_root(tmp_path_factory) -> Path:
    """2 training videos and 1 validation video of 6 frames at the configs' 160x224."""
    from lightflow.data.synthetic.vid import generate_synthetic_vid

    root = tmp_path_factory.mktemp('synthvid') / 'data'
    generate_synthetic_vid(root, num_train_videos=2, num_val_videos=1, num_frames=6, seed=3)
    return root


def _options(root: Path) -> list[str]:
    return ['--cfg-options', f'data_root={root}/', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'default_hooks.logger.interval=1']


@pytest.fixture(scope='module')
def trained(load_tool, synth_root, tmp_path_factory) -> dict:
    """Train every synthetic config for one tiny epoch (12 clips, batch 2: 6 iterations) with tools/train_vid.py."""
    train_vid = load_tool('train_vid')
    out = {}
    for config in SYNTH_CONFIGS:
        work_dir = tmp_path_factory.mktemp(config.stem[:20])
        train_vid.main([str(config), '--work-dir', str(work_dir), *_options(synth_root)])
        ckpt = work_dir / 'epoch_1.pth'
        assert ckpt.is_file(), config.name
        out[config.stem] = (config, ckpt, work_dir)
    return out


@pytest.mark.slow  # ~55 s with the module's trained fixture (trains every synthvid config)
def test_train_writes_checkpoints_for_every_synthetic_config(trained):
    assert len(trained) == len(SYNTH_CONFIGS) >= 3
    import torch
    for config, ckpt, _ in trained.values():
        state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
        assert any(k.startswith('detector.backbone.') for k in state), config.name
        if config.name.startswith('dff'):
            assert any(k.startswith('motion.flownet.') for k in state), config.name
        if config.name.startswith('dff-gru'):
            assert any(k.startswith('aggregator.') for k in state), config.name


@pytest.mark.slow  # uses the trained fixture
def test_test_vid_prints_map_and_fps(load_tool, trained, synth_root, capsys):
    test_vid = load_tool('test_vid')
    config, ckpt, work_dir = next(v for k, v in trained.items() if k.startswith('dff_lightflow'))
    metrics = test_vid.main([str(config), str(ckpt), '--key-frame-interval', '3', '--work-dir', str(work_dir),
                             '--out', str(work_dir / 'metrics.json'), '--cfg-options', f'data_root={synth_root}/'])
    printed = capsys.readouterr().out
    assert 'mAP@50:' in printed and 'slow' in printed and 'fast' in printed and 'fps:' in printed
    assert 'key frames' in printed and 'non-key frames' in printed
    # 6 validation frames with interval 3: keys at frame_id 0 and 3.
    assert metrics['frames'] == 6 and metrics['key_frames'] == 2 and metrics['fps'] > 0
    assert 0.0 <= metrics['vid/mAP'] <= 1.0
    assert (work_dir / 'metrics.json').is_file()


@pytest.mark.slow  # uses the trained fixture
def test_benchmark_writes_table_and_plot(load_tool, trained, synth_root, tmp_path, capsys):
    benchmark = load_tool('benchmark_vid')
    config, ckpt, work_dir = next(v for k, v in trained.items() if k.startswith('dff_lightflow'))
    rows = benchmark.main([str(config), str(ckpt), '--intervals', '1', '4', '--out-dir', str(tmp_path),
                           '--work-dir', str(work_dir), '--cfg-options', f'data_root={synth_root}/'])
    assert [r['key_frame_interval'] for r in rows] == [1, 4]
    assert [r['key_frames'] for r in rows] == [6, 2]
    table = (tmp_path / 'benchmark.md').read_text()
    sweep, profile = table.split('## Profile')
    assert sweep.count('\n| ') == 3 and '| 4 |' in sweep  # header + 2 rows
    # Faster R-CNN: the profile does not split its two heads (n/a; their time is in 'other'); no GRU either.
    assert '| head | n/a | n/a | n/a |' in profile and '| aggregate | n/a | n/a | n/a |' in profile
    png = (tmp_path / 'benchmark.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 5000
    assert not list(tmp_path.glob('.*tmp'))  # atomic writes leave no temp files


@pytest.mark.slow  # uses the trained fixture
def test_checkpoint_of_another_config_is_refused(load_tool, trained, synth_root, tmp_path):
    """The single-frame detector's checkpoint for the DFF config lacks the motion module: refused (mmengine alone
    would only log the missing keys and test a random Light Flow)."""
    import re

    dff_config = trained['dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid'][0]
    single_ckpt = trained['retinanet_mobilenetv2_1xb2-6e_synthvid'][1]
    pattern = (rf'{re.escape(str(single_ckpt))}: (\d+) of \d+ model weights missing \(e\.g\. motion\.flownet\.[^)]+\); '
               rf'is it a checkpoint of {re.escape(str(dff_config))}\?')
    options = ['--work-dir', str(tmp_path), '--cfg-options', f'data_root={synth_root}/']
    for tool, extra in (('test_vid', []), ('benchmark_vid', ['--intervals', '1', '2'])):
        with pytest.raises(ValueError) as info:
            load_tool(tool).main([str(dff_config), str(single_ckpt), *extra, *options])
        assert re.fullmatch(pattern, str(info.value)), (tool, str(info.value))


@pytest.mark.parametrize('tool,args,message', [
    ('train_vid', ['configs/vid/missing.py'], 'no such config file'),
    ('test_vid', ['configs/vid/retinanet_mobilenetv2_1xb2-6e_synthvid.py', 'missing.pth'], 'no such checkpoint'),
    ('benchmark_vid', [str(CONFIG_DIR / 'retinanet_mobilenetv2_1xb2-6e_synthvid.py'), __file__,
                       '--intervals', '0'], '--intervals must be >= 1'),
])
def test_tools_fail_with_one_line_error(tool, args, message):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / f'{tool}.py'), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.slow  # ~10 s + the trained fixture
def test_benchmark_motion_swaps_only_the_motion_in_a_trained_detector(load_tool, trained, synth_root, tmp_path,
                                                                       capsys):
    """(A) a single-frame checkpoint in the propagation config, (B) the propagation checkpoint with its own flow."""
    tool = load_tool('benchmark_motion')
    _, single_ckpt, _ = next(v for k, v in trained.items() if k.startswith('retinanet'))
    config, dff_ckpt, work_dir = next(v for k, v in trained.items() if k.startswith('dff_lightflow-w0.5_retinanet'))
    common = ['--interval', '3', '--work-dir', str(work_dir), '--cfg-options', f'data_root={synth_root}/']
    rows = tool.main([str(config), str(dff_ckpt), '--motions', 'zero', 'own', 'dis_fast', 'exact', '--out-dir',
                      str(tmp_path / 'B'), *common, '--intervals', '3', '2'])
    assert [r['token'] for r in rows] == ['zero', 'own', 'dis_fast', 'exact']
    for r in rows:
        assert all(0.0 <= r['mAP'][n]['mAP'] <= 1.0 for n in (2, 3)) and r['boxes'] > 0 and r['ms'] > 0
    epe = {r['token']: r['epe'] for r in rows}
    assert epe['exact'] == 0.0 and epe['zero'] > 0.0 and epe['dis_fast'] > 0.0  # measured against exact motion
    table = (tmp_path / 'B' / 'motion_benchmark.md').read_text()
    assert "Light Flow (checkpoint's own)" in table and 'single-frame (interval 1)' in table
    assert '| exact motion 112x144 | 2 |' in table and '| exact motion 112x144 | 3 |' in table
    # The flow picture: frame | key | zero | own | DIS per video; zero flow is white below its label, DIS is not.
    from lightflow.io import read_image
    strip = read_image(tmp_path / 'B' / 'motion_flows.png')
    w = strip.shape[1] // 6
    assert strip.shape[1] == 6 * w
    white = [float((strip[:, i * w:(i + 1) * w] == 255).all(-1).mean()) for i in range(6)]
    assert white[2] > 0.9 and white[4] < 0.5, white  # only the label is not white in the zero panel
    # Videos shorter than half an interval have no frame to draw: the tables are still written, the picture skipped.
    tool.main([str(config), '--motions', 'zero', '--max-videos', '1', '--out-dir', str(tmp_path / 'C'), *common,
               '--interval', '1000'])
    assert (tmp_path / 'C' / 'motion_benchmark.md').is_file() and not (tmp_path / 'C' / 'motion_flows.png').exists()
    with pytest.raises(ValueError, match='--motions own: .* holds no Light Flow'):
        tool.main([str(config), str(single_ckpt), '--motions', 'own', *common])
    rows = tool.main([str(config), str(single_ckpt), '--motions', 'zero', '--out-dir', str(tmp_path / 'A'), *common])
    assert 0.0 <= rows[0]['mAP'][3]['mAP'] <= 1.0
    with pytest.raises(ValueError, match='--intervals: 1 has no non-key frames'):
        tool.main([str(config), str(single_ckpt), '--motions', 'zero', *common, '--intervals', '1'])
    with pytest.raises(ValueError, match='is inside the data set'):
        tool.main([str(config), '--motions', 'zero', *common, '--out-dir', str(synth_root / 'Data' / 'val' / 'x')])


@pytest.mark.slow  # ~11 s + the trained fixture
def test_vid_results_table_runs_every_detector_motion_and_schedule(load_tool, trained, synth_root, tmp_path):
    """tools/vid_results.py: the single-frame detector once, propagation per motion (interval 1 once: no motion is
    used), the GRU per motion at every schedule; the table holds every row and the ms ratio to single-frame."""
    tool = load_tool('vid_results')
    single = trained['retinanet_mobilenetv2_1xb2-6e_synthvid']
    dff = trained['dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid']
    gru = trained['dff-gru-8keys_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid']
    rows = tool.main(['--detector', 'single', str(single[0]), str(single[1]), '--detector', 'prop', str(dff[0]),
                      str(dff[1]), '--detector', 'gru8', str(gru[0]), str(gru[1]), '--motions', 'own', 'exact',
                      '--intervals', '1', '3', '--adaptive', '4', '--key-states', '3', '--out-dir', str(tmp_path),
                      '--cfg-options', f'data_root={synth_root}/'])
    runs = [(r['detector'], r['motion'].split()[0], r['schedule']) for r in rows]
    assert runs == [('single', '-', 'every frame'),
                    ('prop', 'Light', 'every frame'), ('prop', 'Light', 'interval 3'),
                    ('prop', 'Light', 'adaptive (> 4 px)'), ('prop', 'exact', 'interval 3'),
                    ('prop', 'exact', 'adaptive (> 4 px)'),
                    ('gru8', 'Light', 'every frame'), ('gru8', 'Light', 'interval 3'),
                    ('gru8', 'Light', 'adaptive (> 4 px)'), ('gru8', 'exact', 'every frame'),
                    ('gru8', 'exact', 'interval 3'), ('gru8', 'exact', 'adaptive (> 4 px)')]
    from lightflow.cli import metric_value
    assert all(0.0 <= metric_value(r, 'mAP') <= 1.0 and r['mean_ms'] > 0 for r in rows)
    assert [r['key_frames'] for r in rows if r['schedule'] == 'interval 3'][0] == 2  # 6 frames: keys 0 and 3
    table = (tmp_path / 'vid_results.md').read_text()
    results, section = table.split('## Where aggregation can gain')
    assert results.count('\n| ') == len(rows) + 1 and '| single | - | every frame |' in results
    splits = {line.split(' | ')[0][2:]: line.split(' | ')[1:] for line in section.splitlines()[3:]}
    # the split over every frame is each detector's mAP of the run it was taken from (own motion, interval 3)
    expected = [metric_value(rows[i], 'mAP') for i in (0, 2, 7)]
    assert [float(c.strip(' |')) / 100 for c in splits['every frame'][2:]] == pytest.approx(expected, abs=6e-4)
    assert splits['key frames'][1] == '2' and splits['non-key frames'][1] == '4'  # one val video of 6 frames
    errors = section.split('## What goes wrong on non-key frames')[1]
    shares = {line.split(' | ')[0][2:]: line.split(' | ')[1:] for line in errors.splitlines()[3:] if line}
    for column in range(3):  # each detector's outcomes of all ground truths add up to 100 %
        total = sum(float(shares[f'ground truths: {o}'][column].strip(' |%')) for o in
                    ('hit', 'wrong class', 'lagging', 'missed'))
        assert total == pytest.approx(100.0, abs=0.25)


def test_key_state_splits_count_the_right_frames_and_objects():
    """mmdet_plugin.evaluation.key_states on hand-made results (key every 2 frames): a swapped split (blurred vs
    sharp, hidden vs visible, the key of the wrong frame) gives other numbers."""
    import numpy as np

    from mmdet_plugin.evaluation.key_states import fixed_keys, key_state_rows

    box = np.array([[10.0, 10.0, 40.0, 40.0]])

    def frame(fid, detected):
        return dict(video_id=1, frame_id=fid, gt_boxes=box, gt_labels=np.array([0]), gt_ids=np.array([7]),
                    gt_ignore=np.zeros(1, bool), pred_boxes=box if detected else np.zeros((0, 4)),
                    pred_scores=np.array([0.9]) if detected else np.zeros(0),
                    pred_labels=np.array([0]) if detected else np.zeros(0, np.int64))

    results = [frame(3, False), frame(0, True), frame(2, True), frame(1, True)]  # any order
    keys = fixed_keys(results, 2)
    assert keys == [(1, 2), (1, 0), (1, 2), (1, 0)]
    blur = {(1, 0): 0, (1, 1): 0, (1, 2): 5, (1, 3): 0}  # the key at frame 2 is blurred
    visible = {(1, 0, 7): 0.3, (1, 1, 7): 1.0, (1, 2, 7): 1.0, (1, 3, 7): 1.0}  # hidden at the key at frame 0
    rows = {r['split']: (r['mAP'], r['gts'], r['frames']) for r in key_state_rows(results, keys, blur, visible, 2, 1)}
    assert rows['every frame'] == (pytest.approx(75.0), 4, 4)
    assert rows['key frames'] == (pytest.approx(100.0), 2, 2)
    assert rows['non-key frames'] == (pytest.approx(50.0), 2, 2)
    assert rows['non-key, key blurred'] == (pytest.approx(0.0), 1, 1)  # frame 3, missed
    assert rows['non-key, key sharp'] == (pytest.approx(100.0), 1, 1)  # frame 1
    assert rows['non-key, object visible at the key'][:2] == (pytest.approx(0.0), 1)  # frame 3's object
    assert rows['non-key, object hidden at the key and the key before'][:2] == (pytest.approx(100.0), 1)  # frame 1
    hidden_seen = rows['non-key, object hidden at the key, seen by the key before']
    assert np.isnan(hidden_seen[0]) and hidden_seen[1] == 0
    no_blur = key_state_rows(results, keys, dict.fromkeys(blur), visible, 2, 1)
    assert np.isnan(no_blur[3]['mAP']) and no_blur[0]['mAP'] == pytest.approx(75.0)  # a set without blur fields


def test_error_kinds_tell_a_lagging_detection_from_a_hit_a_miss_and_a_wrong_class():
    """mmdet_plugin.evaluation.error_kinds on hand-made results (key every 2 frames, an object moving from one box
    at the key to another in the frame): each outcome, and a false positive on the key-frame box."""
    import numpy as np

    from mmdet_plugin.evaluation.error_kinds import error_kind_rows, error_kind_table
    from mmdet_plugin.evaluation.key_states import fixed_keys

    at_key, moved, elsewhere = ([10.0, 10.0, 40.0, 40.0], [50.0, 10.0, 80.0, 40.0], [10.0, 60.0, 30.0, 80.0])

    def frame(video, fid, gt, dets):
        return dict(video_id=video, frame_id=fid, gt_boxes=np.array([gt]), gt_labels=np.array([0]),
                    gt_ids=np.array([3]), gt_ignore=np.zeros(1, bool),
                    pred_boxes=np.array([d[0] for d in dets]).reshape(-1, 4),
                    pred_scores=np.array([d[2] for d in dets], float), pred_labels=np.array([d[1] for d in dets], int))

    results = []
    for video, dets in enumerate([[(at_key, 0, 0.9)],                   # lagging: the detection stayed at the key
                                  [(moved, 0, 0.9), (elsewhere, 0, 0.8)],  # hit, and a false positive elsewhere
                                  [(moved, 1, 0.9)],                     # wrong class
                                  [(moved, 0, 0.1)]]):                   # below the score threshold: missed
        results += [frame(video, 0, at_key, [(at_key, 0, 0.9)]), frame(video, 1, moved, dets)]
    speeds = {(v, f, 3): 'fast' for v in range(4) for f in range(2)}
    rows = error_kind_rows(results, fixed_keys(results, 2), speeds, score_thr=0.3)
    assert rows['gts'] == {'fast': {'hit': 1, 'wrong class': 1, 'lagging': 1, 'missed': 1}}
    # false positives: the lagging detection (on the key box) and the one elsewhere; the wrong-class detection on
    # the moved box is the 'wrong class' outcome, not a false positive
    assert (rows['fp_on_key_box'], rows['fp_other'], rows['frames']) == (1, 1, 4)
    table = error_kind_table({'a': rows}, 2)
    assert '| fast ground truths: lagging | 25.0 % |' in table
    assert '| false positives on a key-frame box (ghost or lag), per 100 frames | 25.0 |' in table
    with pytest.raises(ValueError, match='score_thr must be in'):
        error_kind_rows(results, fixed_keys(results, 2), speeds, score_thr=3)
