"""Hooks: colour flow pictures of validation samples, Light Flow hyperparameters and RNG states in every checkpoint."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_rank, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..checkpoint import lightflow_config
from ..io import atomic_write, encode_png
from ..viz import flow_to_color
from .registry import HOOKS

__all__ = ['FlowVisualizationHook', 'LightFlowMetaHook', 'RNGStateHook', 'ResumedScheduleHook',
           'ValidateBeforeTrainHook', 'encode_png', 'flow_panel', 'get_rng_states', 'set_rng_states']


def flow_panel(img1: torch.Tensor, pred: torch.Tensor, gt: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> np.ndarray:
    """``frame 1 | prediction | GT`` side by side, pred and GT coloured on the same scale (the GT's max magnitude).

    Args:
        img1: (3, H, W) RGB 0..255; pred, gt: (2, H, W) px; valid: (H, W) bool (invalid GT drawn white).

    Returns:
        uint8 (H, 3W + 8, 3) (or (H, 2W + 4, 3) without GT).
    """
    pred = pred.detach().float().cpu()
    ref = pred
    panels = [img1.detach().float().cpu().clamp(0, 255).byte().permute(1, 2, 0).numpy()]
    if gt is not None:
        gt = gt.detach().float().cpu()
        if valid is not None:
            gt = torch.where(valid.cpu().bool(), gt, torch.full_like(gt, float('nan')))
        ref = gt
    finite = torch.nan_to_num(ref, nan=0.0, posinf=0.0, neginf=0.0)
    max_flow = max(float(finite.norm(dim=0).max()), 1e-3)
    panels.append(flow_to_color(pred, max_flow=max_flow))
    if gt is not None:
        panels.append(flow_to_color(gt, max_flow=max_flow))
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    out = [panels[0]]
    for p in panels[1:]:
        out += [gap, p]
    return np.concatenate(out, axis=1)


@HOOKS.register_module()
class FlowVisualizationHook(Hook):
    """At each validation, write ``frame 1 | prediction | GT`` colour PNGs of the first ``num_samples`` samples to
    ``work_dir/vis/iter_<N>/<k>.png`` (atomically) and send them to the runner's visualizer (TensorBoard)."""

    priority = 'LOW'

    def __init__(self, num_samples: int = 4, out_dir: str = 'vis') -> None:
        if num_samples < 0:
            raise ValueError(f'num_samples must be >= 0, got {num_samples}')
        self.num_samples, self.out_dir, self._written = int(num_samples), out_dir, 0

    def before_val_epoch(self, runner) -> None:
        self._written = 0

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict | None = None, outputs=None) -> None:
        if not is_main_process() or self._written >= self.num_samples or not outputs:
            return
        folder = Path(runner.work_dir) / self.out_dir / f'iter_{runner.iter}'
        for i, out in enumerate(outputs):
            if self._written >= self.num_samples:
                break
            img = flow_panel(data_batch['inputs'][i][0], out['pred_flow'], out.get('gt_flow'), out.get('gt_valid'))
            with atomic_write(folder / f'{self._written:03d}.png') as f:
                f.write(encode_png(img))
            runner.visualizer.add_image(f'val_flow_{self._written}', img, step=runner.iter)
            self._written += 1


@HOOKS.register_module()
class LightFlowMetaHook(Hook):
    """Stores ``meta['lightflow']`` = every :class:`~lightflow.LightFlowConfig` field in each checkpoint, so loaders
    rebuild the exact network without the config."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        checkpoint.setdefault('meta', {})['lightflow'] = lightflow_config(model.flownet)


@HOOKS.register_module()
class ValidateBeforeTrainHook(Hook):
    """Runs one validation before the first training iteration (not on resume), so logs show the starting EPE."""

    priority = 'LOWEST'  # after the logger / checkpoint hooks have set up in their own before_train

    def before_train(self, runner) -> None:
        if runner.iter == 0 and runner.val_loop is not None:
            runner.val_loop.run()


def get_rng_states() -> dict[str, Any]:
    """The global RNG states (python ``random``, numpy, torch CPU and the current CUDA device) as tensors and plain
    values, so a checkpoint holding them still loads with ``torch.load(weights_only=True)``."""
    version, mt, gauss_next = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    states = dict(python=dict(version=version, state=torch.tensor(mt, dtype=torch.int64), gauss_next=gauss_next),
                  numpy=dict(kind=np_kind, keys=torch.from_numpy(np_keys.astype(np.int64)), pos=int(np_pos),
                             has_gauss=int(np_has_gauss), cached_gaussian=float(np_gauss)),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_states` returned (the CUDA state only where CUDA is available)."""
    py = states['python']
    random.setstate((py['version'], tuple(int(v) for v in py['state'].tolist()), py['gauss_next']))
    npy = states['numpy']
    np.random.set_state((npy['kind'], npy['keys'].cpu().numpy().astype(np.uint32), npy['pos'], npy['has_gauss'],
                         npy['cached_gaussian']))
    torch.set_rng_state(states['torch'].cpu())
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'].cpu())


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Makes ``--resume`` continue the global random streams of the uninterrupted run.

    Every checkpoint stores :func:`get_rng_states` as ``checkpoint['rng_states']``. On resume they are restored just
    before the first resumed iteration (after mmengine has reseeded and the data loader has started), so random ops in
    the model continue where the saved run was. Validation during training is RNG-neutral: the states are put back
    after each validation, so the training streams do not depend on when, or whether, validation runs. ``load_from``
    without resume (fine-tuning) keeps the fresh seed. The data's own randomness is made resumable by the seeded
    samplers (:mod:`lightflow.engine.sampler`), not by this hook.

    Distributed: the checkpoint holds rank 0's states; every rank restores them unless ``randomness.diff_rank_seed``
    gave the ranks different streams, in which case only rank 0 does.
    """

    priority = 'VERY_HIGH'  # restore before any other hook's before_train_iter may draw

    def __init__(self) -> None:
        self._loaded = False
        self._pending: dict[str, Any] | None = None
        self._before_val: dict[str, Any] | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_states'] = get_rng_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded, self._pending = True, checkpoint.get('rng_states')

    def before_train(self, runner) -> None:
        if runner.iter == 0:  # load_from without resume: keep the fresh seed
            self._pending = None
        elif self._loaded and self._pending is None:
            runner.logger.warning('RNGStateHook: the resumed checkpoint holds no RNG states (saved without this hook); '
                                  'random draws after the resume differ from the uninterrupted run')
        elif get_rank() != 0 and (runner.cfg.get('randomness') or {}).get('diff_rank_seed', False):
            self._pending = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None

    def before_val(self, runner) -> None:
        self._before_val = get_rng_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_rng_states(self._before_val)
            self._before_val = None


class ResumedScheduleHook(Hook):
    """A resumed run whose config changes the schedule (``--resume --iters 12`` after 4) follows the new schedule.

    mmengine restores every scheduler's whole state on resume, the old ``end`` / ``T_max`` / milestones included, so
    without this the run would go on with the schedule of the run that wrote the checkpoint. Before the first resumed
    iteration this rebuilds the config's schedulers from the base values and steps them to the resumed iteration (and
    epoch), as if the run had been configured so from the start.

    Args:
        param_scheduler: the run's ``param_scheduler`` config (list of dicts).
    """

    priority = 'VERY_LOW'  # after the checkpoint and RNG states are restored

    def __init__(self, param_scheduler: list[dict]) -> None:
        self.param_scheduler = [dict(s) for s in param_scheduler]

    def before_train(self, runner) -> None:
        # The schedule multiplies the values the first scheduler recorded as initial_<name> (the optimizer's saved
        # groups keep them); the resumed values are the old schedule's.
        for group in runner.optim_wrapper.param_groups:
            for key in [k for k in group if k.startswith('initial_')]:
                group[key[len('initial_'):]] = group[key]
        schedulers = runner.build_param_scheduler([dict(s) for s in self.param_scheduler])
        for scheduler in schedulers:
            for _ in range(runner.epoch if scheduler.by_epoch else runner.iter):
                scheduler.step()
        runner.param_schedulers = schedulers
        runner.logger.info(f'--resume: the schedule follows this run\'s config (stepped to iteration {runner.iter}, '
                           f'epoch {runner.epoch}), not the resumed checkpoint\'s')
