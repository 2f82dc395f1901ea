"""tools/benchmark_data.py --quick: every table row is there with finite positive numbers, and the Chairs statistics
agree with an independent reading of the shared .flo files."""
from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope='module')
def benchmark_data(load_tool):
    return load_tool('benchmark_data')


def _rows(table: str, section: str) -> list[list[str]]:
    """The body rows (cells stripped) of the markdown table under ``## section``."""
    body = table.split(f'## {section}', 1)[1].split('\n## ', 1)[0]
    lines = [line for line in body.splitlines() if line.startswith('|')]
    return [[c.strip() for c in line.strip('|').split('|')] for line in lines[2:]]


def _number(cell: str) -> float:
    return float(re.sub(r'\s*%$', '', cell))


def _flo_magnitudes(path: Path) -> np.ndarray:
    """Read a .flo file with struct + numpy alone: 'PIEH', int32 width, int32 height, (u, v) float32 little-endian."""
    data = path.read_bytes()
    magic, width, height = struct.unpack('<4sii', data[:12])
    assert magic == b'PIEH'
    flow = np.frombuffer(data, '<f4', offset=12).reshape(height, width, 2).astype(np.float64)
    return np.hypot(flow[..., 0], flow[..., 1]).ravel()


@pytest.fixture(scope='module')
def quick_run(benchmark_data, tmp_path_factory) -> tuple[str, Path, Path]:
    out = tmp_path_factory.mktemp('benchmark_data')
    md, png = out / 'data.md', out / 'hist.png'
    table = benchmark_data.main(['--quick', '--out', str(md), '--plot', str(png)])
    return table, md, png


def test_quick_run_writes_every_row(quick_run) -> None:
    table, md, png = quick_run
    assert md.read_text() == table
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000
    assert 'Machine: ' in table and 'torch ' in table

    throughput = _rows(table, 'Data throughput')
    paths = {(r[0], r[1], r[2]) for r in throughput}
    assert ('cpu', '1', "generator (render='window')") in paths
    assert ('cpu', '2', "generator (render='window')") in paths
    assert ('cpu', '1', 'SyntheticChairs.read_raw (1 pair per call)') in paths
    for row in throughput:
        assert row[3] == '128x192'
        ms, pairs_per_s = _number(row[5]), _number(row[6])
        assert math.isfinite(ms) and ms > 0 and math.isfinite(pairs_per_s) and pairs_per_s > 0
        assert pairs_per_s == pytest.approx(int(row[4]) / ms * 1e3, rel=0.05, abs=0.1)

    share = _rows(table, 'Share of a Light Flow alpha = 0.5 training step')
    assert len(share) == len(throughput)
    for row in share:
        data_ms, step_ms, percent = (_number(c) for c in row[6:9])
        assert data_ms > 0 and step_ms > 0 and 0 < percent < 100
        assert percent == pytest.approx(100 * data_ms / (data_ms + step_ms), abs=0.2)

    motion = _rows(table, 'Displacement magnitude of the GT flow')
    labels = [r[0] for r in motion]
    assert any(label.startswith('generator, motion_scale=1.0') for label in labels)
    assert any('motion_scale=1.5 at 256x320 (CPU recipe)' in label and 'x1.5' in label for label in labels)
    for row in motion:
        mean, median, p90, p99, largest, above20, above40 = (_number(c) for c in row[3:10])
        assert 0 < median <= p90 <= p99 <= largest and 0 < mean <= largest
        assert 100 >= above20 >= above40 >= 0


def test_chairs_row_matches_an_independent_reading(quick_run, shared_data) -> None:
    files = sorted((shared_data / 'FlyingChairs_mini' / 'data').glob('*_flow.flo'))
    assert len(files) == 5
    magnitudes = np.concatenate([_flo_magnitudes(f) for f in files])
    (row,) = [r for r in _rows(quick_run[0], 'Displacement magnitude of the GT flow')
              if r[0].startswith('Flying Chairs GT')]
    assert row[1] == '384x512' and row[2] == '5'
    assert _number(row[3]) == pytest.approx(magnitudes.mean(), abs=0.006)
    assert _number(row[7]) == pytest.approx(magnitudes.max(), abs=0.006)
    assert _number(row[8]) == pytest.approx(100 * (magnitudes > 20).mean(), abs=0.006)


@pytest.mark.parametrize('argv, message', [
    (['--sizes', '12x64'], 'at least 16x16'),
    (['--sizes', '128by192'], 'HxW'),
    (['--repeats', '0'], '--repeats must be >= 1'),
    (['--threads', '0'], '--threads must be >= 1'),
])
def test_bad_arguments_exit_with_one_line(benchmark_data, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        benchmark_data.main(argv)
    text = str(info.value.code)
    assert text.startswith('error: ') and message in text and '\n' not in text
