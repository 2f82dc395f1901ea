"""No code runs from a checkpoint on any path mmengine loads through: resume, load_from, the checkpoint loader."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

import lightflow.engine  # noqa: F401  (installs the weights-only loader)
from lightflow import LightFlow

REPO = Path(__file__).resolve().parents[1]
SYNTH_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb8-2k_synthetic.py'


class _Touch:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f'touch {self.path}',)


def _evil(tmp_path: Path) -> tuple[Path, Path]:
    marker, evil = tmp_path / 'code_ran', tmp_path / 'evil.pth'
    state = {f'flownet.{k}': v for k, v in LightFlow(0.5).state_dict().items()}
    torch.save({'state_dict': state, 'meta': {'x': _Touch(marker)}}, evil)
    return marker, evil


def test_mmengine_loader_refuses_pickled_code(tmp_path):
    marker, evil = _evil(tmp_path)
    with pytest.raises(ValueError, match=r'evil\.pth: cannot load checkpoint \(UnpicklingError: .*system'):
        _load_checkpoint(str(evil), map_location='cpu')
    assert not marker.exists()
    # a genuine mmengine-style checkpoint still loads
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'epoch': 1}}, good)
    assert torch.equal(_load_checkpoint(str(good), map_location='cpu')['state_dict']['w'], torch.ones(2))
    # the payload is real: unrestricted unpickling runs it
    torch.load(evil, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize('how', ['resume', 'load_from'])
def test_train_tool_refuses_pickled_code(tmp_path, how):
    marker, evil = _evil(tmp_path)
    args = [sys.executable, str(REPO / 'tools' / 'train_flow.py'), str(SYNTH_CFG), '--work-dir', str(tmp_path / 'w'),
            '--cfg-options', 'train_cfg.max_iters=1', 'model.pretrained=None']
    if how == 'resume':
        args[5:5] = ['--resume', str(evil)]
    else:
        args.append(f'load_from={evil}')
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode != 0
    assert not marker.exists(), 'code ran from the checkpoint'
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'evil.pth: cannot load checkpoint' in last, proc.stderr[-1500:]
