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
from mmengine.registry import DATASETS, MODELS

from ..data.synthetic import SyntheticFlowGenerator, SyntheticIndices
from .model import FlowDataPreprocessor

__all__ = ['SyntheticFlowPreprocessor']

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
