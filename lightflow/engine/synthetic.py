"""On-device synthetic training data for mmengine: the data loader yields sample indices, the preprocessor renders.

A config trains on :class:`~lightflow.data.SyntheticFlowGenerator` pairs rendered on the model's device (CUDA or CPU)
with::

    train_dataloader = dict(batch_size=64, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
                            collate_fn=dict(type='pseudo_collate'),
                            dataset=dict(type='SyntheticIndices', num_samples=10_000_000))
    model = dict(data_preprocessor=dict(type='SyntheticFlowPreprocessor', generator=dict(size=(384, 512))))

mmengine's samplers give each DDP rank its own indices, and a sample depends only on ``(seed, index)``, so ranks
render different pairs and a rerun renders the same ones. Validation batches (real data) pass through unchanged.
"""
from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..data.synthetic import SyntheticFlowGenerator, SyntheticIndices
from .model import FlowDataPreprocessor
from .registry import DATASETS, HOOKS, MODELS

__all__ = ['SyntheticFlowPreprocessor', 'MotionCurriculumHook']

DATASETS.register_module(module=SyntheticIndices)


@MODELS.register_module()
class SyntheticFlowPreprocessor(FlowDataPreprocessor):
    """Renders batches of ``dict(synthetic_index=...)`` on the model's device; other batches as
    :class:`FlowDataPreprocessor`.

    Args:
        generator: :class:`~lightflow.data.SyntheticFlowGenerator` arguments (``size``, ``motion_scale``, ...; its
            ``device`` follows the model).
        augment: photometric augmentation on the device (each sample's own draws, shared by the frames with
            probability 0.8).
    """

    def __init__(self, generator: dict | None = None, augment: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        generator = dict(generator or {})
        if 'device' in generator:
            raise ValueError('generator.device: the generator renders on the model\'s device; do not set it')
        self.generator = SyntheticFlowGenerator(**generator)
        self.augment = bool(augment)

    def forward(self, data: dict, training: bool = False) -> dict:
        if 'synthetic_index' not in data:
            return super().forward(data, training)
        index = data['synthetic_index']
        index = index.tolist() if isinstance(index, torch.Tensor) else [int(i) for i in index]
        if self.generator.device != self.device:
            self.generator.to(self.device)
        with torch.no_grad():
            batch = self.generator.render(index, augment=self.augment)
        inputs = torch.stack([batch.img1, batch.img2], dim=1)  # (N, 2, 3, H, W)
        samples = [dict(flow=batch.flow[i], valid=batch.valid[i], sample_idx=index[i]) for i in range(len(index))]
        return dict(inputs=inputs, data_samples=samples)


@HOOKS.register_module()
class MotionCurriculumHook(Hook):
    """Ramps the on-device generator's ``motion_scale`` linearly from ``start`` to ``end`` over the first ``iters``
    iterations (small motions first), then keeps ``end``.

    Needs ``SyntheticFlowPreprocessor`` (the generator lives in the training process); a per-sample dataset rendered in
    DataLoader workers cannot be changed from here.
    """

    priority = 'NORMAL'

    def __init__(self, start: float = 0.5, end: float = 1.0, iters: int = 5000) -> None:
        if not start >= 0 or not end >= 0:
            raise ValueError(f'MotionCurriculumHook: start and end must be >= 0, got {start} and {end}')
        if int(iters) != iters or iters <= 0:
            raise ValueError(f'MotionCurriculumHook: iters must be a positive int, got {iters}')
        self.start, self.end, self.iters = float(start), float(end), int(iters)

    def motion_scale(self, iteration: int) -> float:
        t = min(max(iteration, 0) / self.iters, 1.0)
        return self.start + t * (self.end - self.start)

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        pre = getattr(model, 'data_preprocessor', None)
        if not isinstance(pre, SyntheticFlowPreprocessor):
            raise ValueError('MotionCurriculumHook needs model.data_preprocessor=SyntheticFlowPreprocessor (on-device '
                             f'synthetic data), got {type(pre).__name__}')
        self._generator = pre.generator

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._generator.motion_scale = self.motion_scale(runner.iter)
