"""Two-process DDP training through torchrun with the gloo backend on CPU (tools/train_flow.py --launcher pytorch)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SYNTH_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb8-2k_synthetic.py'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~10 s
def test_torchrun_two_processes_gloo(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(_free_port()),
           str(REPO / 'tools' / 'train_flow.py'), str(SYNTH_CFG), '--launcher', 'pytorch', '--work-dir', str(tmp_path),
           '--cfg-options', 'train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3',
           'train_dataloader.batch_size=2', 'train_dataloader.dataset.dataset.size=(64,64)',
           'train_dataloader.dataset.dataset.num_samples=8', 'val_dataloader.dataset.dataset.size=(64,64)',
           'val_dataloader.dataset.dataset.num_samples=4', 'custom_hooks=[]', 'default_hooks.checkpoint.save_best=None']
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next(tmp_path.glob('*/*.log')).read_text()
    # mmengine logs the world size as 'GPU number' whatever the device.
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'Iter(val)' in log and 'EPE:' in log  # both ranks evaluated, results gathered on rank 0
    ckpt = torch.load(tmp_path / 'iter_3.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 3 and any(k.startswith('flownet.') for k in ckpt['state_dict'])


@pytest.mark.slow  # ~19 s
def test_torchrun_two_processes_gloo_video_detector(tmp_path):
    """tools/train_vid.py --launcher pytorch on CPU: one-frame clips leave the motion module unused, which DDP
    tolerates only with find_unused_parameters (configs/vid/_base_/default_runtime.py)."""
    data = tmp_path / 'data'
    subprocess.run([sys.executable, str(REPO / 'tools' / 'make_synthetic_vid.py'), str(data), '--num-videos', '2',
                    '--num-val-videos', '2', '--frames', '8'], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    config = REPO / 'configs' / 'vid' / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(_free_port()),
           str(REPO / 'tools' / 'train_vid.py'), str(config), '--launcher', 'pytorch', '--work-dir',
           str(tmp_path / 'work'), '--cfg-options', f'data_root={data}/', 'train_cfg.max_epochs=1',
           'train_cfg.val_interval=1']
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'vid/mAP' in log  # both ranks evaluated their videos, results gathered on rank 0
    ckpt = torch.load(tmp_path / 'work' / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 1 and any(k.startswith('motion.flownet.') for k in ckpt['state_dict'])
