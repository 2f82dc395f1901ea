"""Optical-flow error metrics (pure torch): end-point error, N-pixel accuracy and KITTI's Fl-all outlier rate.

Averaging convention: every metric is a *per-pixel* average over all valid pixels (of one call, or of a whole dataset
when the returned sums and counts are accumulated, as :class:`lightflow.engine.FlowMetric` does). The KITTI devkit
also averages per pixel within an image but then per image over the benchmark; with equal-size images and dense GT the
two agree, with sparse GT they differ slightly. We report per-pixel dataset averages and say so.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .io import UNKNOWN_FLOW_THRESH

__all__ = ['valid_flow_mask', 'flow_metric_sums', 'flow_metrics', 'metrics_from_sums', 'METRIC_KEYS']

# Public names of the reported metrics, in reporting order.
METRIC_KEYS = ('EPE', '1px', '3px', '5px', 'Fl-all')
_SUM_KEYS = ('epe_sum', 'n_1px', 'n_3px', 'n_5px', 'n_outlier', 'gt_mag_sum', 'count')


def _as_batch(t: Tensor, name: str, channels: int | None) -> Tensor:
    """(C, H, W) -> (1, C, H, W); (H, W) masks -> (1, H, W)."""
    if not isinstance(t, Tensor):
        raise ValueError(f'{name}: expected a torch.Tensor, got {type(t).__name__}')
    if channels is None:  # a mask
        return t.unsqueeze(0) if t.dim() == 2 else t
    return t.unsqueeze(0) if t.dim() == 3 else t


def valid_flow_mask(gt: Tensor, valid: Tensor | None = None) -> Tensor:
    """Pixels whose GT flow can be scored: finite, below Middlebury's 1e9 "unknown" marker, and ``valid`` if given.

    Args:
        gt: (N, 2, H, W) or (2, H, W) GT flow.
        valid: optional (N, H, W) or (H, W) bool mask of pixels with GT (e.g. KITTI's sparse mask).

    Returns:
        bool mask (N, H, W) (or (H, W) for an unbatched ``gt``).
    """
    ok = torch.isfinite(gt).all(dim=-3) & (gt.abs() < UNKNOWN_FLOW_THRESH).all(dim=-3)
    if valid is not None:
        if valid.shape != ok.shape:
            raise ValueError(f'valid must have shape {tuple(ok.shape)} to match gt {tuple(gt.shape)}, '
                             f'got {tuple(valid.shape)}')
        ok = ok & valid.bool()
    return ok


def flow_metric_sums(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> dict[str, float]:
    """Accumulable sums behind :func:`flow_metrics`.

    Args:
        pred: (N, 2, H, W) or (2, H, W) predicted flow in pixels.
        gt: GT flow of the same shape; NaN/inf/|v| >= 1e9 entries are treated as invalid.
        valid: optional (N, H, W) or (H, W) bool mask.

    Returns:
        dict with ``epe_sum`` (sum of EPE over valid pixels), ``n_1px``/``n_3px``/``n_5px`` (valid pixels with
        EPE < 1/3/5), ``n_outlier`` (valid pixels with EPE > 3 and EPE > 5 % of |gt|, KITTI) and ``count`` (valid
        pixels), all Python floats.
    """
    pred, gt = _as_batch(pred, 'pred', 2), _as_batch(gt, 'gt', 2)
    if pred.shape != gt.shape or pred.dim() != 4 or pred.shape[1] != 2:
        raise ValueError(f'pred and gt must both be (N, 2, H, W) or (2, H, W), got {tuple(pred.shape)} and '
                         f'{tuple(gt.shape)}')
    mask = valid_flow_mask(gt, None if valid is None else _as_batch(valid, 'valid', None))
    # Masked pixels are zeroed before the arithmetic so a 1e9 or NaN never reaches a sum (NaN * 0 is still NaN).
    gt = torch.where(mask.unsqueeze(1), gt, torch.zeros_like(gt)).double()
    epe = (pred.double() - gt).norm(dim=1)[mask]
    mag = gt.norm(dim=1)[mask]
    return dict(
        epe_sum=float(epe.sum()),
        n_1px=float((epe < 1).sum()),
        n_3px=float((epe < 3).sum()),
        n_5px=float((epe < 5).sum()),
        n_outlier=float(((epe > 3) & (epe > 0.05 * mag)).sum()),
        gt_mag_sum=float(mag.sum()),
        count=float(mask.sum()),
    )


def metrics_from_sums(sums: dict[str, float]) -> dict[str, float]:
    """Turn (accumulated) :func:`flow_metric_sums` into EPE (px), 1px/3px/5px (fractions 0..1), Fl-all (percent)
    and ``EPE_zero``, the EPE of predicting zero flow (mean |gt|), as a reference.

    With no valid pixel at all every metric is NaN (there is nothing to average, and 0 would look like a result).
    """
    missing = [k for k in _SUM_KEYS if k not in sums]
    if missing:
        raise ValueError(f'sums lack {missing}; expected the keys of flow_metric_sums: {list(_SUM_KEYS)}')
    n = sums['count']
    if n <= 0:
        return {k: math.nan for k in (*METRIC_KEYS, 'EPE_zero')}
    return {
        'EPE': sums['epe_sum'] / n,
        '1px': sums['n_1px'] / n,
        '3px': sums['n_3px'] / n,
        '5px': sums['n_5px'] / n,
        'Fl-all': 100.0 * sums['n_outlier'] / n,
        # EPE a zero-flow prediction would score: the reference a trained model must beat to show it matches pixels.
        'EPE_zero': sums['gt_mag_sum'] / n,
    }


def flow_metrics(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> dict[str, float]:
    """EPE, 1px/3px/5px accuracy and Fl-all of ``pred`` against ``gt`` over valid pixels.

    Args:
        pred: (N, 2, H, W) or (2, H, W) predicted flow in pixels.
        gt: GT flow of the same shape; NaN/inf/|v| >= 1e9 entries are invalid and never averaged.
        valid: optional (N, H, W) or (H, W) bool mask of pixels with GT.

    Returns:
        ``{'EPE', '1px', '3px', '5px', 'Fl-all'}`` (EPE in px, Npx as fractions, Fl-all in percent) plus the raw
        sums of :func:`flow_metric_sums` for accumulation over a dataset.
    """
    sums = flow_metric_sums(pred, gt, valid)
    return {**metrics_from_sums(sums), **sums}
