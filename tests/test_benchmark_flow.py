"""tools/benchmark_flow.py runs end to end on a tiny setting and reports every backend, DIS and the non-key step."""
from __future__ import annotations

import re

import pytest

from lightflow.inference.backends import available_backends


@pytest.fixture(scope='module')
def benchmark_flow(load_tool):
    return load_tool('benchmark_flow')


@pytest.mark.slow  # ~9 s
def test_benchmark_flow_tables(benchmark_flow, tmp_path):
    pytest.importorskip('mmdet')
    out = tmp_path / 'bench.md'
    text = benchmark_flow.main(['--threads', '1', '--sizes', '64x96', '--repeats', '1', '--warmup', '0',
                                '--models', 'lightflow_w0_5', '--out', str(out)])
    assert out.read_text() == text
    row = next(ln for ln in text.splitlines() if ln.startswith('| Light Flow 0.5 |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    backends = available_backends()
    assert len(cells) == 2 + 1 + len(backends) + 3
    assert all(float(c) > 0 for c in cells[1:3 + len(backends)])  # GFLOPs, plain and every backend timed
    picked = re.match(r'\*\*([\d.]+)\*\* \((\w+)\)', cells[3 + len(backends)])
    assert picked and picked.group(2) in backends
    assert float(cells[-1]) < 1e-3  # estimate_flow vs the plain network, px
    dis = next(ln for ln in text.splitlines() if ln.startswith('| OpenCV DIS'))
    assert len(re.findall(r'\d+\.\d+', dis)) == 3
    assert '| key step (backbone + FPN + head) |' in text and '| non-key: NonKeyStep, torch |' in text


def test_benchmark_flow_rejects_bad_size(benchmark_flow):
    for size, message in (('64by96', "size must be HxW (e.g. 384x512), got '64by96'"),
                          ('0x96', "size must be at least 1x1, got '0x96'")):
        with pytest.raises(SystemExit) as exit_info:  # the one line Python prints for a str exit code
            benchmark_flow.parse_args(['--sizes', size])
        assert exit_info.value.code == f'error: --sizes: {message}'
