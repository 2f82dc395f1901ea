"""tools/gpu_pretrain.sh end to end on the CPU at a tiny size: smoke run, timed run, export, summary."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightflow.pretrained import file_sha256
from lightflow.checkpoint import load_lightflow_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~46 s
def test_gpu_pretrain_script_cpu_path(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, SMOKE_ITERS='2', TRAIN_SECONDS='1', BATCH='2',
               EXTRA_OPTS='model.data_preprocessor.generator.size=(64,64) val_dataloader.dataset.dataset.size=(64,64) '
                          'val_dataloader.dataset.dataset.num_samples=2 val_dataloader.num_workers=0 '
                          'model.channels_last=False')
    out = tmp_path / 'out'
    proc = subprocess.run(['bash', str(REPO / 'tools' / 'gpu_pretrain.sh'), str(out), '0.5'], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'no CUDA device' in proc.stdout
    summary = (out / 'summary.md').read_text().splitlines()
    row = [c.strip() for c in summary[-1].strip('|').split('|')]
    width, iters, batch, pairs = row[0], int(row[1]), int(row[2]), int(row[3])
    assert width == '0.5' and iters >= 10 and batch == 2 and pairs == iters * 2 and float(row[5]) > 0
    weights = out / 'lightflow_w0.5_synthetic.pth'
    printed = re.search(r'sha256 ([0-9a-f]{64})', proc.stdout).group(1)
    assert file_sha256(weights) == printed
    net = load_lightflow_checkpoint(weights)
    trained = load_lightflow_checkpoint(out / 'train' / f'iter_{iters}.pth')
    for (k, v), (k2, v2) in zip(net.state_dict().items(), trained.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
