"""Light Flow as an mmengine model and its batch preparation. The loss (:mod:`lightflow.losses`) and the checkpoint
loaders (:mod:`lightflow.checkpoint`) are pure torch and re-exported here."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from torch import Tensor

from ..checkpoint import (_torch_load, checkpoint_width, lightflow_state_dict, load_lightflow_checkpoint,  # noqa: F401
                          load_lightflow_weights)
from ..inference import estimate_flow, pad_to_multiple, resolve_backend
from ..losses import downsample_flow_target, flow_l1_loss  # noqa: F401  (re-exported)
from ..models.lightflow import LightFlowConfig, build_lightflow
from ..pretrained import resolve_weights
from .registry import MODELS

__all__ = ['LightFlowModel', 'FlowDataPreprocessor', 'flow_l1_loss', 'downsample_flow_target',
           'load_lightflow_checkpoint', 'load_lightflow_weights', 'lightflow_state_dict',
           'checkpoint_width']


@MODELS.register_module()
class FlowDataPreprocessor(BaseDataPreprocessor):
    """Moves a ``pseudo_collate``-d batch to the model's device and stacks equal-size pairs.

    Returns ``dict(inputs=(N, 2, 3, H, W) tensor, or a list of (2, 3, H, W) pairs of different sizes,
    data_samples=list of per-sample data elements (or dicts) with flow / valid)``.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, (list, tuple)) and len({tuple(x.shape) for x in inputs}) == 1:
            inputs = torch.stack(list(inputs))
        return dict(inputs=inputs, data_samples=None if samples is None else list(samples))


def _field(sample: Any, key: str, default: Any = None) -> Any:
    """``key`` of a per-sample dict or data element (its data fields and metainfo)."""
    return default if sample is None else sample.get(key, default)


@MODELS.register_module()
class LightFlowModel(BaseModel):
    """Light Flow for mmengine's Runner.

    Args:
        width_mult: width multiplier alpha (1.0, 0.75, 0.5 in the paper).
        div_flow: the network predicts flow / div_flow; EPE is measured after upsampling and multiplying back.
        pretrained: optional checkpoint (raw LightFlow state dict, a train_flow.py checkpoint, or the name of a
            shipped one: :func:`lightflow.list_pretrained`) loaded at build time; a checkpoint of another width raises
            ValueError naming its width.
        data_preprocessor: config of the batch preprocessor (default :class:`FlowDataPreprocessor`; on-device synthetic
            data: ``SyntheticFlowPreprocessor``).
        channels_last: run the network in channels-last memory format (faster convolutions on GPUs, with AMP).
        backend: backend of ``estimate_flow`` in predict mode: ``'torch'`` (default), ``'auto'`` or another
            registered one (:func:`lightflow.inference.backend_names`; see :class:`lightflow.FlowEstimator`); the same
            argument as ``LightFlowMotion(backend=...)``.
        init_cfg: mmengine init config.
        **lightflow_cfg: any other :class:`lightflow.LightFlowConfig` field (e.g. ``decoder_channels``).
    """

    def __init__(self, width_mult: float = LightFlowConfig.width_mult, div_flow: float = LightFlowConfig.div_flow,
                 pretrained: str | None = None,
                 data_preprocessor: dict | BaseDataPreprocessor | None = None, channels_last: bool = False,
                 backend: str = 'torch', init_cfg: dict | None = None, **lightflow_cfg) -> None:
        # Built here, in the lightflow scope: a LightFlowModel made in plain Python (no Runner, or an mmdet Runner's
        # scope current) must still find FlowDataPreprocessor.
        preprocessor = data_preprocessor or dict(type='FlowDataPreprocessor')
        if isinstance(preprocessor, dict):
            preprocessor = MODELS.build(preprocessor)
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        unknown = set(lightflow_cfg) - set(LightFlowConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f'LightFlowModel: unknown Light Flow hyperparameters {sorted(unknown)}')
        self.flownet = build_lightflow(LightFlowConfig(width_mult=width_mult, div_flow=div_flow, **lightflow_cfg))
        if pretrained:
            load_lightflow_weights(self.flownet, resolve_weights(pretrained))
        # 'torch' by default: during training the weights change between validations, and a runtime backend would
        # export and compile again each time (~0.3-1 s per input shape); tools/test_flow.py picks 'auto'.
        self.backend = resolve_backend(backend)  # a lightflow.inference.Backend, passed down as it is
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.flownet.to(memory_format=torch.channels_last)  # Module.to(device) later keeps this layout

    @property
    def div_flow(self) -> float:
        return self.flownet.div_flow

    def forward(self, inputs: Tensor | list[Tensor], data_samples: list[dict] | None = None,
                mode: str = 'tensor') -> dict[str, Tensor] | list[dict] | Tensor:
        """Run in one of mmengine's modes.

        Args:
            inputs: (N, 2, 3, H, W) frame pairs (RGB 0..255), or a list of (2, 3, H, W) pairs of different sizes
                (predict mode only). Any H, W: pairs are replicate-padded to multiples of 64.
            data_samples: per-sample data elements (or dicts) with ``flow`` (2, H, W) and ``valid`` (H, W) (loss and
                predict modes).
            mode: 'loss' -> ``{'loss_flow'}``; 'predict' -> list of dicts with ``pred_flow`` (2, H, W) in pixels at the
                sample's size and ``gt_flow``/``gt_valid`` when given; 'tensor' -> (N, 2, H'/4, W'/4) raw output of
                the padded pair (flow / div_flow).
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward_padded(self._as_batch(inputs, mode))[0]
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    @staticmethod
    def _as_batch(inputs: Tensor | list[Tensor], mode: str) -> Tensor:
        if isinstance(inputs, (list, tuple)):
            if len({tuple(x.shape) for x in inputs}) != 1:
                raise ValueError(f'{mode} mode needs pairs of one size in a batch, got '
                                 f'{sorted({tuple(x.shape) for x in inputs})}')
            inputs = torch.stack(list(inputs))
        if inputs.dim() != 5 or inputs.shape[1:3] != (2, 3):
            raise ValueError(f'inputs must be (N, 2, 3, H, W) frame pairs, got {tuple(inputs.shape)}')
        return inputs

    def _forward_padded(self, pairs: Tensor) -> tuple[Tensor, tuple[int, int]]:
        x = self.flownet.normalize(pairs[:, 0].float(), pairs[:, 1].float())
        x, size = pad_to_multiple(x, self.flownet.size_divisor)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.flownet.forward_features(x), size

    def loss(self, inputs: Tensor | list[Tensor], data_samples: list[dict]) -> dict[str, Tensor]:
        """L1 loss of :func:`flow_l1_loss`; padded pixels count as invalid GT."""
        if not data_samples:
            raise ValueError('loss mode needs data_samples with GT flow and valid masks')
        pred, size = self._forward_padded(self._as_batch(inputs, 'loss'))
        return {'loss_flow': self.supervised_loss(pred, size, data_samples)}

    def supervised_loss(self, pred: Tensor, size: tuple[int, int], data_samples: list, motion_gain: float = 0.0
                        ) -> Tensor:
        """:func:`flow_l1_loss` of a padded pair's raw output ``pred`` against the samples' flow on their valid pixels
        (``size``: the unpadded (H, W); ``motion_gain``: see :func:`flow_l1_loss`)."""
        h, w = size
        flow = torch.stack([_field(s, 'flow') for s in data_samples]).float()
        valid = torch.stack([_field(s, 'valid') for s in data_samples]).bool()
        hp, wp = pred.shape[-2] * 4, pred.shape[-1] * 4
        flow = F.pad(flow, (0, wp - w, 0, hp - h))
        valid = F.pad(valid, (0, wp - w, 0, hp - h), value=False)
        return flow_l1_loss(pred, flow, valid, self.div_flow, motion_gain)

    def predict(self, inputs: Tensor | list[Tensor], data_samples: list[dict] | None = None) -> list[dict]:
        """Full-resolution flow per sample via :func:`lightflow.estimate_flow` (the one frames -> pixel-flow path,
        :meth:`lightflow.inference.FlowGraph.pixel_flow`, through ``backend``)."""
        if isinstance(inputs, Tensor):
            flows = list(estimate_flow(self.flownet, inputs[:, 0], inputs[:, 1], backend=self.backend))
        else:  # pairs of different sizes: one at a time
            flows = [estimate_flow(self.flownet, x[0], x[1], backend=self.backend)[0] for x in inputs]
        results = []
        for i, flow in enumerate(flows):
            sample = data_samples[i] if data_samples else None
            result = {k: _field(sample, k) for k in ('ori_shape', 'sample_idx') if _field(sample, k) is not None}
            if 'ori_shape' in result:
                oh, ow = (int(v) for v in result['ori_shape'])
                flow = flow[:, :oh, :ow]
            result['pred_flow'] = flow
            if _field(sample, 'flow') is not None:
                result['gt_flow'] = _field(sample, 'flow')
                result['gt_valid'] = _field(sample, 'valid')
            results.append(result)
        return results
