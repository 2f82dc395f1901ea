"""Hooks: colour flow pictures of validation samples, and Light Flow hyperparameters in every checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..checkpoint import lightflow_config
from ..io import atomic_write
from ..viz import flow_to_color

__all__ = ['FlowVisualizationHook', 'LightFlowMetaHook', 'ValidateBeforeTrainHook', 'encode_png', 'flow_panel']


def encode_png(img: np.ndarray) -> bytes:
    """uint8 (H, W, 3) RGB -> PNG bytes."""
    import imageio.v3 as iio

    return iio.imwrite('<bytes>', img, extension='.png')


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
