"""mmengine glue of the label-free adaptation (``tools/adapt_flow.py``): teacher-labelled video pairs as a dataset,
a concatenation that mixes them with generator pairs, and Light Flow with the photometric terms added to its loss."""
from __future__ import annotations

import bisect
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..data.video_pairs import VideoPairs
from ..losses import census_loss, edge_aware_smoothness
from ..warp import flow_warp, resize_flow
from .dataset import PackedFlowDataset, build_flow_transforms
from .model import LightFlowModel
from .registry import DATASETS, MODELS

__all__ = ['VideoPairsDataset', 'ConcatFlowDataset', 'LightFlowAdaptModel']


@DATASETS.register_module()
class VideoPairsDataset(PackedFlowDataset):
    """:class:`lightflow.data.VideoPairs` (teacher-labelled frame pairs of videos) as mmengine samples.

    Args:
        transforms: see :func:`lightflow.engine.build_flow_transforms`.
        **kwargs: :class:`lightflow.data.VideoPairs` arguments (``sources``, ``size``, ``max_gap``, ``cache_dir``...).
    """

    def __init__(self, transforms: str | dict | list | None = None, **kwargs) -> None:  # noqa: D107
        self.dataset = VideoPairs(transforms=build_flow_transforms(transforms), **kwargs)
        self._metainfo = dict(dataset_type='VideoPairs', size=self.dataset.size)


@DATASETS.register_module()
class ConcatFlowDataset(Dataset):
    """Several flow datasets one after the other (a shuffling sampler then mixes them in proportion to their
    lengths): e.g. teacher-labelled video pairs and generator pairs, so the network adapts and stays general."""

    def __init__(self, datasets: Sequence[dict | Dataset]) -> None:
        if not datasets:
            raise ValueError('ConcatFlowDataset needs at least one dataset')
        self.datasets = [DATASETS.build(d) if isinstance(d, dict) else d for d in datasets]
        self._concat = torch.utils.data.ConcatDataset(self.datasets)

    @property
    def metainfo(self) -> dict:
        return dict(dataset_type='ConcatFlowDataset', parts=[getattr(d, 'metainfo', {}) for d in self.datasets])

    def __len__(self) -> int:
        return len(self._concat)

    def __getitem__(self, index):
        seed = getattr(index, 'seed', None)
        i = int(index)
        ends = self._concat.cumulative_sizes
        part = bisect.bisect_right(ends, i)  # torch's ConcatDataset lookup, kept here to carry the seed through
        local = i - (ends[part - 1] if part else 0)
        # Keep the sampler's per-sample seed (SeededIndex) so augmentation stays reproducible on resume.
        item = self.datasets[part][type(index)(local, seed) if seed is not None else local]
        item['data_samples'].set_metainfo(dict(sample_idx=i))
        return item


@MODELS.register_module()
class LightFlowAdaptModel(LightFlowModel):
    """Light Flow trained on teacher flow (or GT) plus UFlow's label-free photometric terms.

    ``loss = L1(prediction, teacher on its valid pixels)`` (:func:`lightflow.losses.flow_l1_loss`)
    ``+ photometric_weight * census(frame 1, frame 2 warped by the prediction)`` over the pixels whose sample lies in
    frame 2 ``+ smooth_weight * edge-aware smoothness``. The photometric terms see the prediction upsampled
    bilinearly to the input size, as :func:`lightflow.estimate_flow` returns it; they also cover the pixels where the
    teacher's forward-backward check failed (occlusions aside, the frames still say where things went).

    Args:
        photometric_weight: weight of the census term.
        smooth_weight: weight of the smoothness term.
        motion_gain: teacher cells that move against the camera (objects) weigh ``1 + motion_gain`` in the L1 term
            (:func:`lightflow.losses.flow_l1_loss`): they are few, and they are where the detector needs the flow.
        photometric_scale: the photometric terms compare the frames area-downsampled by this factor (and the flow
            resized to match): the network predicts on a 1/4 grid, so half size loses little and costs a quarter.
        **kwargs: :class:`LightFlowModel` arguments.
    """

    def __init__(self, photometric_weight: float = 0.0, smooth_weight: float = 0.0, photometric_scale: float = 0.5,
                 motion_gain: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if motion_gain < 0:
            raise ValueError(f'motion_gain must be >= 0, got {motion_gain}')
        self.motion_gain = float(motion_gain)
        if not 0 < photometric_scale <= 1:
            raise ValueError(f'photometric_scale must be in (0, 1], got {photometric_scale}')
        self.photometric_scale = float(photometric_scale)
        if photometric_weight < 0 or smooth_weight < 0:
            raise ValueError(f'photometric_weight and smooth_weight must be >= 0, got {photometric_weight} and '
                             f'{smooth_weight}')
        self.photometric_weight = float(photometric_weight)
        self.smooth_weight = float(smooth_weight)

    def loss(self, inputs: Tensor | list[Tensor], data_samples: list) -> dict[str, Tensor]:
        """``{'loss_flow', 'loss_census', 'loss_smooth'}`` (the last two only with non-zero weights)."""
        if not data_samples:
            raise ValueError('loss mode needs data_samples with teacher (or GT) flow and valid masks')
        pairs = self._as_batch(inputs, 'loss').float()
        pred, (h, w) = self._forward_padded(pairs)
        losses = {'loss_flow': self.supervised_loss(pred, (h, w), data_samples, self.motion_gain)}
        if not (self.photometric_weight or self.smooth_weight):
            return losses
        img1, img2 = pairs[:, 0], pairs[:, 1]
        flow = F.interpolate(pred, scale_factor=4.0, mode='bilinear', align_corners=False)[..., :h, :w] * self.div_flow
        if self.photometric_scale != 1.0:
            # The network's output grid is 1/4 of the input: half-size photometric terms lose little and cost 1/4.
            size = (max(8, round(h * self.photometric_scale)), max(8, round(w * self.photometric_scale)))
            img1 = F.interpolate(img1, size=size, mode='area')
            img2 = F.interpolate(img2, size=size, mode='area')
            flow = resize_flow(flow, size)
            h, w = size
        if self.photometric_weight:
            warped = flow_warp(img2, flow, padding_mode='border')
            xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w) + flow[:, 0]
            ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1) + flow[:, 1]
            inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
            losses['loss_census'] = self.photometric_weight * census_loss(img1, warped, inside)
        if self.smooth_weight:
            losses['loss_smooth'] = self.smooth_weight * edge_aware_smoothness(flow, img1)
        return losses
