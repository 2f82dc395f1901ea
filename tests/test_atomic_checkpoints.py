"""A checkpoint save interrupted midway loses nothing: the previous checkpoint stays loadable, last_checkpoint keeps
naming it, no partial or temporary file is left, and --resume continues from it."""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.runner import Runner

import lightflow.engine  # noqa: F401
from lightflow.checkpoint import load_lightflow_checkpoint
from lightflow.engine import AtomicLocalBackend, load_config
from lightflow.engine.config import find_resume_checkpoint
from lightflow.io import atomic_write

REPO = Path(__file__).resolve().parents[1]
SYNTH_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb8-2k_synthetic.py'


def _cfg(work_dir: Path, iters: int):
    cfg = load_config(str(SYNTH_CFG), work_dir=str(work_dir))
    cfg.model.pop('pretrained', None)
    cfg.train_dataloader.dataset.dataset.update(num_samples=16, size=(32, 32), num_objects=(1, 2))
    cfg.train_dataloader.batch_size = 2
    cfg.val_dataloader.dataset.dataset.update(num_samples=2, size=(32, 32))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=iters, val_interval=1000)
    cfg.param_scheduler = []
    cfg.custom_hooks = [dict(type='LightFlowMetaHook')]
    cfg.default_hooks.checkpoint.update(type='AtomicCheckpointHook', interval=2, max_keep_ckpts=1)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    return cfg


def test_interrupted_save_keeps_the_previous_checkpoint_and_resume_continues(tmp_path, monkeypatch):
    saves = []

    def crashing_put(self, obj, filepath):
        saves.append(Path(filepath).name)
        if len(saves) == 2:  # the second checkpoint: die halfway through writing it
            with atomic_write(filepath) as f:
                f.write(obj[:len(obj) // 2])
                raise RuntimeError('power cut')
        with atomic_write(filepath) as f:
            f.write(obj)

    monkeypatch.setattr(AtomicLocalBackend, 'put', crashing_put)
    with pytest.raises(RuntimeError, match='power cut'):
        Runner.from_cfg(_cfg(tmp_path, 4)).train()
    assert saves == ['iter_2.pth', 'iter_4.pth']
    files = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert 'iter_2.pth' in files and 'iter_4.pth' not in files
    assert not [f for f in files if f.endswith('.tmp')]
    assert find_resume_checkpoint(tmp_path) == str(tmp_path / 'iter_2.pth')
    assert load_lightflow_checkpoint(tmp_path / 'iter_2.pth').width_mult == 0.5

    monkeypatch.undo()
    cfg = _cfg(tmp_path, 6)
    cfg.resume, cfg.load_from = True, find_resume_checkpoint(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 6
    # max_keep_ckpts=1: the newest is kept, older ones are deleted only after it was written
    assert sorted(p.name for p in tmp_path.glob('iter_*.pth')) == ['iter_6.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_6.pth')


def test_every_config_saves_atomically():
    from mmengine.config import Config

    paths = sorted((REPO / 'configs').glob('*/*.py'))
    assert len(paths) >= 10
    for path in paths:
        cfg = Config.fromfile(str(path), import_custom_modules=False)
        assert cfg.default_hooks.checkpoint.type.split('.')[-1] == 'AtomicCheckpointHook', path.name
