"""lightflow.evaluation and tools/eval_real_flow.py: EPE conventions, DIS and warp-error direction checks on real
pairs, and the tool end to end (table, colour panels, training curve) on a tiny checkpoint."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lightflow
from lightflow import read_flo
from lightflow.baseline_flow import dis_flow, zero_flow
from lightflow.evaluation import FlowPair, epe_table, list_checkpoints, shared_real_pairs, video_frame_pairs, warp_error
from lightflow.io import read_image
from lightflow.metrics import valid_flow_mask

REPO = Path(__file__).resolve().parents[1]
# The tool sets the (process-wide) thread count; keep the suite's own.
THREADS = ['--threads', str(torch.get_num_threads())]


@pytest.fixture(scope='module')
def real_pairs(shared_data) -> dict[str, FlowPair]:
    return {p.name: p for p in shared_real_pairs(shared_data)}


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.save({'state_dict': lightflow.build_lightflow(width_mult=0.5).state_dict()}, path)
    return path


def _shifted_pair(dx: int, dy: int, size=(48, 64), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random texture whose content moves by (dx, dy) from img1 to img2: img2[y + dy, x + dx] = img1[y, x]."""
    h, w = size
    big = np.random.default_rng(seed).integers(0, 256, (h + 20, w + 20, 3), dtype=np.uint8)
    return big[10:10 + h, 10:10 + w], big[10 - dy:10 - dy + h, 10 - dx:10 - dx + w]


def test_zero_flow_epe_is_mean_valid_gt_magnitude_and_mean_is_over_pairs():
    rng = np.random.default_rng(1)
    gt_a = torch.from_numpy(rng.normal(0, 3, (2, 6, 8)).astype(np.float32))
    gt_a[:, 0, :4] = 1e9  # Middlebury's unknown marker: never scored
    gt_b = torch.full((2, 4, 4), 0.0)
    gt_b[0] = 2.0  # |gt| = 2 everywhere
    img = lambda h, w: np.zeros((h, w, 3), np.uint8)  # noqa: E731
    pairs = [FlowPair('a', img(6, 8), img(6, 8), gt_a), FlowPair('b', img(4, 4), img(4, 4), gt_b)]
    row = epe_table({'zero': zero_flow}, pairs)['zero']
    mag = gt_a.double().norm(dim=0)
    expected_a = float(mag[gt_a.abs().amax(dim=0) < 1e9].mean())
    assert row['a'] == pytest.approx(expected_a, rel=1e-9)
    assert row['b'] == pytest.approx(2.0)
    # Unweighted mean of the per-pair EPEs (a has 44 valid pixels, b 16): not the pixel-weighted 2.x mix.
    assert row['mean'] == pytest.approx((expected_a + 2.0) / 2)


def test_epe_table_rejects_wrong_flow_shape():
    pair = FlowPair('a', np.zeros((6, 8, 3), np.uint8), np.zeros((6, 8, 3), np.uint8), torch.zeros(2, 6, 8))
    with pytest.raises(ValueError, match=r'bad on a: expected a \(2, 6, 8\) flow'):
        epe_table({'bad': lambda a, b: torch.zeros(2, 8, 6)}, [pair])


def test_warp_error_integer_shift_direction():
    img1, img2 = _shifted_pair(dx=3, dy=-2)
    flow = torch.tensor([3.0, -2.0]).view(2, 1, 1).expand(2, 48, 64)
    assert warp_error(img1, img2, flow) < 1e-6  # integer flows move pixels exactly
    assert warp_error(img1, img2, torch.zeros(2, 48, 64)) > 40  # uniform noise: mean |a - b| ~ 85
    assert warp_error(img1, img2, -flow) > 40  # the sign convention matters
    # A flow sending every sample out of the frame has nothing to score.
    assert np.isnan(warp_error(img1, img2, torch.full((2, 48, 64), 100.0)))


def test_zero_flow_epe_on_real_pair_and_rubberwhale_unknown_excluded(real_pairs, shared_data):
    assert list(real_pairs) == [f'chairs_0000{i}' for i in range(1, 6)] + ['rubberwhale']
    table = epe_table({'zero': zero_flow}, list(real_pairs.values()))['zero']
    for name, path in (('chairs_00001', 'FlyingChairs_mini/data/00001_flow.flo'),
                       ('rubberwhale', 'middlebury/RubberWhale/flow10.flo')):
        gt = read_flo(shared_data / path).astype(np.float64)  # independent of the evaluation module's reader
        valid = np.isfinite(gt).all(-1) & (np.abs(gt) < 1e9).all(-1)
        assert table[name] == pytest.approx(np.linalg.norm(gt[valid], axis=-1).mean(), rel=1e-6)
    rw_valid = valid_flow_mask(real_pairs['rubberwhale'].flow)
    assert 0 < int((~rw_valid).sum()) < rw_valid.numel() // 2  # RubberWhale really has unknown pixels ...
    assert 0.5 < table['rubberwhale'] < 5  # ... and they never reach the mean (1e9 would dominate it)
    assert np.isfinite(table['mean'])


def test_dis_beats_zero_flow_on_chairs(real_pairs):
    pair = real_pairs['chairs_00004']
    row = epe_table({'zero': zero_flow, 'dis': lambda a, b: dis_flow(a, b, 'fast')}, [pair])
    assert row['dis']['mean'] < 0.5 * row['zero']['mean']
    # DIS and the GT both follow the warp convention: each explains frame 1 from frame 2 better than no motion.
    still = warp_error(pair.img1, pair.img2, zero_flow(pair.img1, pair.img2))
    assert warp_error(pair.img1, pair.img2, dis_flow(pair.img1, pair.img2, 'fast')) < 0.7 * still
    assert warp_error(pair.img1, pair.img2, torch.where(pair.flow.abs() < 1e9, pair.flow, 0)) < 0.7 * still
    with pytest.raises(ValueError, match='preset must be one of'):
        dis_flow(pair.img1, pair.img2, 'slow')


def test_video_frame_pairs_downscaled(shared_data):
    pairs = video_frame_pairs(shared_data, max_side=320, max_pairs=1)
    assert [p.name for p in pairs] == ['ILSVRC2015_val_00007010/000', 'MOT17-05-FRCNN/000', 'demo/000']
    assert [p.img1.shape for p in pairs] == [(180, 320, 3), (240, 320, 3), (180, 320, 3)]
    assert all(p.img1.dtype == np.uint8 and p.img1.shape == p.img2.shape and not np.array_equal(p.img1, p.img2)
               for p in pairs)


def test_tool_table_end_to_end(load_tool, tiny_checkpoint, shared_data, tmp_path):
    out = tmp_path / 'out'
    result = load_tool('eval_real_flow').main([str(tiny_checkpoint), '--data', str(shared_data), '--out-dir', str(out),
                           '--video-max-side', '256', '--video-max-pairs', '1', *THREADS])
    rows = ['zero flow', 'DIS ultrafast', 'DIS fast', 'DIS medium', 'Light Flow α=0.5 (tiny)']
    assert list(result['table']) == rows
    lines = (out / 'real_pairs.md').read_text().splitlines()
    table_rows = [line.split(' | ')[0].lstrip('| ') for line in lines if line.startswith('| ') and '---' not in line]
    assert table_rows[1:1 + len(rows)] == rows  # after the header row
    zero_line = next(line for line in lines if line.startswith('| zero flow |'))
    assert '| **' in zero_line and '| 1.00 |' in zero_line  # mean EPE / zero of zero flow itself
    assert result['table']['DIS medium']['mean'] < result['table']['zero flow']['mean']
    assert set(result['warp']) == set(rows) and all(np.isfinite(v) for v in result['warp'].values())
    panels = sorted(p.name for p in out.glob('flow_*.png'))
    assert panels == sorted(f'flow_{name}.png' for name in result['table']['zero flow'] if name != 'mean')
    assert read_image(out / 'flow_chairs_00001.png').shape == (384, 3 * 512 + 2 * 4, 3)  # GT | model | DIS


def test_tool_curve(load_tool, tiny_checkpoint, shared_data, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    for it, age in ((2, 300), (10, 200)):  # numeric order, not 'iter_10' < 'iter_2'
        path = work / f'iter_{it}.pth'
        path.write_bytes(tiny_checkpoint.read_bytes())
        os.utime(path, (1e9 - age, 1e9 - age))
    (work / 'best_EPE_iter_10.pth').write_bytes(b'not a checkpoint')  # not an iter_*.pth: ignored
    out = tmp_path / 'out'
    result = load_tool('eval_real_flow').main(['--curve', str(work), '--pairs-per-iter', '4',
                                               '--data', str(shared_data), '--out-dir', str(out), *THREADS])
    with open(out / 'curve.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(int(r['iteration']), int(r['pairs_seen']), float(r['wall_s'])) for r in rows] == [(2, 8, 0.0),
                                                                                               (10, 40, 100.0)]
    assert rows[0]['mean_EPE'] == rows[1]['mean_EPE']  # the same weights
    assert float(rows[0]['mean_EPE']) == pytest.approx(result['curve'][0]['mean_EPE'])
    assert (out / 'curve.png').stat().st_size > 1000 and 'iter_10.pth' in (out / 'curve.md').read_text()
    assert not (out / 'real_pairs.md').exists()  # --curve without MODEL: the curve only


def test_curve_stages_continue_the_pairs_axis(tmp_path):
    for stage, iters in (('s1', (100, 200)), ('s2', (50, 100))):
        (tmp_path / stage).mkdir()
        for it in iters:
            (tmp_path / stage / f'iter_{it}.pth').touch()
    dirs = [str(tmp_path / 's1'), str(tmp_path / 's2')]
    seen = lambda rows: [(r['stage'], r['iteration'], r['pairs_seen']) for r in rows]  # noqa: E731
    # Default: stage 2 (load_from, counter restarted) continues from stage 1's last checkpoint (200 x 16 pairs).
    assert seen(list_checkpoints(dirs, [16, 8], None)) == [(0, 100, 1600), (0, 200, 3200), (1, 50, 3600),
                                                                (1, 100, 4000)]
    # A run resumed into a new dir keeps counting iterations: no offset.
    assert seen(list_checkpoints(dirs, [16], [0, 0]))[2:] == [(1, 50, 800), (1, 100, 1600)]
    with pytest.raises(FileNotFoundError, match='no iter_<N>.pth'):
        list_checkpoints([str(tmp_path)], [16], None)


def test_tool_errors(load_tool, tmp_path, shared_data):
    tool = load_tool('eval_real_flow')
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'garbage')
    with pytest.raises(ValueError, match='bad.pth: cannot load checkpoint'):
        tool.main([str(bad), '--data', str(shared_data), '--out-dir', str(tmp_path / 'o'), *THREADS])
    with pytest.raises((FileNotFoundError, ValueError), match='nope'):  # ValueError: a pretrained-name resolver
        tool.main([str(tmp_path / 'nope.pth'), '--data', str(shared_data), '--out-dir', str(tmp_path / 'o'),
                   *THREADS])
    # The CLI turns these into one line, no traceback.
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'eval_real_flow.py'), '--data', str(tmp_path / 'none')],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 1 and proc.stderr.strip().startswith('error: ') and 'no such data folder' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
