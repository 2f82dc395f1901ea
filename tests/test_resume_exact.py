"""--resume is bit-exact: training N iterations in one go and training N/2, then resuming to N, give identical
per-iteration losses, identical weights and identical global random streams (with validation and DataLoader workers in
between), because the RNG states travel in the checkpoint and each sample's augmentation depends only on its position
in the run."""
from __future__ import annotations

import itertools
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lightflow.engine  # noqa: F401  (registers the `lightflow` scope)
from lightflow.engine import SeededIndex, load_config
from lightflow.engine.sampler import SeededDefaultSampler, SeededInfiniteSampler

REPO = Path(__file__).resolve().parents[1]
SYNTH_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb8-2k_synthetic.py'
ITERS = 6


class _Recorder(Hook):
    """Per iteration: the loss, and one draw of each global RNG where the model would draw (dropout etc.)."""

    priority = 'NORMAL'  # after RNGStateHook (VERY_HIGH) has restored the states

    def __init__(self) -> None:
        self.draws, self.losses = {}, {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.draws[runner.iter] = (torch.rand(1).item(), float(np.random.rand()), random.random())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses[runner.iter] = outputs['loss'].item()


def _run(work_dir: Path, iters: int, num_workers: int, resume: str | None = None) -> tuple[Runner, _Recorder]:
    cfg = load_config(str(SYNTH_CFG), work_dir=str(work_dir))
    cfg.train_dataloader.dataset.dataset.update(num_samples=6, size=(32, 32), num_objects=(1, 2))
    cfg.train_dataloader.update(batch_size=2, num_workers=num_workers, persistent_workers=num_workers > 0)
    cfg.val_dataloader.dataset.dataset.update(num_samples=2, size=(32, 32))
    cfg.val_dataloader.num_workers = num_workers
    cfg.test_dataloader = cfg.val_dataloader
    # Validation (its own loader, RNG draws) right after the checkpoint the resumed run starts from.
    cfg.train_cfg.update(max_iters=iters, val_interval=ITERS // 2)
    cfg.param_scheduler = [dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0, end=ITERS)]
    cfg.custom_hooks = [dict(type='LightFlowMetaHook')]
    cfg.default_hooks.checkpoint.update(interval=ITERS // 2, max_keep_ckpts=2, save_best=None)
    cfg.default_hooks.logger.interval = 1
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.resume, cfg.load_from = resume is not None, resume
    runner = Runner.from_cfg(cfg)
    recorder = _Recorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


def test_resume_repeats_the_uninterrupted_run_bit_for_bit(tmp_path):
    # The interrupted run loads with 2 workers, the uninterrupted one in the main process: the data does not depend
    # on who loads it.
    straight, straight_log = _run(tmp_path / 'straight', ITERS, num_workers=0)
    _run(tmp_path / 'split', ITERS // 2, num_workers=2)
    resumed, resumed_log = _run(tmp_path / 'split', ITERS, num_workers=2,
                                resume=str(tmp_path / 'split' / f'iter_{ITERS // 2}.pth'))

    assert sorted(resumed_log.losses) == list(range(ITERS // 2, ITERS))
    for it in range(ITERS // 2, ITERS):
        assert resumed_log.losses[it] == straight_log.losses[it], it
        assert resumed_log.draws[it] == straight_log.draws[it], it
    final, expected = resumed.model.state_dict(), straight.model.state_dict()
    assert final.keys() == expected.keys()
    for key in expected:
        assert torch.equal(final[key], expected[key]), key


def test_seeded_samplers_keep_mmengine_order_and_give_each_draw_its_own_seed():
    from mmengine.dataset import DefaultSampler, InfiniteSampler

    data = list(range(5))
    first = list(itertools.islice(SeededInfiniteSampler(data, shuffle=True, seed=3), 12))
    assert [int(i) for i in first] == list(itertools.islice(InfiniteSampler(data, shuffle=True, seed=3), 12))
    assert all(isinstance(i, SeededIndex) for i in first) and len({i.seed for i in first}) == 12
    skipped = SeededInfiniteSampler(data, shuffle=True, seed=3)
    skipped.skip(7)  # what mmengine does on resume
    assert [(int(i), i.seed) for i in itertools.islice(skipped, 5)] == [(int(i), i.seed) for i in first[7:]]
    assert pickle.loads(pickle.dumps(first[0])).seed == first[0].seed  # travels to DataLoader workers

    default = SeededDefaultSampler(data, shuffle=True, seed=3)
    seeds = set()
    for epoch in range(2):
        default.set_epoch(epoch)
        reference = DefaultSampler(data, shuffle=True, seed=3)
        reference.set_epoch(epoch)
        got = list(default)
        assert [int(i) for i in got] == list(reference)
        seeds |= {i.seed for i in got}
    assert len(seeds) == 10  # every draw of the run has its own augmentation
