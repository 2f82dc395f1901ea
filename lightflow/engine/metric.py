"""mmengine metric: EPE, 1px/3px/5px accuracy and Fl-all over a whole evaluation set."""
from __future__ import annotations

from typing import Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..metrics import METRIC_KEYS, flow_metric_sums, metrics_from_sums
from .registry import METRICS

__all__ = ['FlowMetric']


@METRICS.register_module()
class FlowMetric(BaseMetric):
    """Per-pixel dataset averages (see :mod:`lightflow.metrics`) of the model's full-resolution predictions.

    Keys: ``EPE`` (px), ``1px``/``3px``/``5px`` (fraction of valid pixels with EPE below 1/3/5 px), ``Fl-all``
    (percent of valid pixels with EPE > 3 px and > 5 % of |gt|). NaN/inf/1e9 GT pixels and ``gt_valid == False`` are
    left out. Only scalar sums are kept per sample, so distributed collection is cheap.
    """

    default_prefix: str | None = None  # plain 'EPE', so CheckpointHook(save_best='EPE') finds it

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'gt_flow' not in sample:
                raise ValueError('FlowMetric needs GT flow: the dataset samples carry no "flow"')
            gt = sample['gt_flow'].to(sample['pred_flow'].device)
            valid = sample.get('gt_valid')
            valid = None if valid is None else valid.to(gt.device)
            self.results.append(flow_metric_sums(sample['pred_flow'], gt, valid))

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        total = {k: sum(r[k] for r in results) for k in results[0]} if results else {'count': 0.0}
        if total['count'] <= 0:
            MMLogger.get_current_instance().warning('FlowMetric: no valid GT pixel in the whole set; metrics are NaN')
            return {k: float('nan') for k in METRIC_KEYS}
        return metrics_from_sums(total)
