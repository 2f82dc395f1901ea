"""Motion modules without a network, drop-in ``motion=`` of :class:`FlowVideoDetector` next to ``LightFlowMotion``:
``ZeroMotion`` (copy the key features unmoved) and ``DISMotion`` (OpenCV's DIS optical flow, a real choice on a
phone or a small CPU, and the baseline any learned flow has to beat)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from lightflow.baseline_flow import DIS_PRESETS, dis_flow

__all__ = ['FrameMotion', 'ZeroMotion', 'DISMotion', 'DIS_PRESETS']


class FrameMotion(BaseModule):
    """Shared input side of the motion modules: detector-normalised frames back to RGB 0..255 at the flow size.

    Args:
        flow_scale: resize factor of the frames before the flow (0.5 in the paper).
        img_mean: per-channel mean of the detector's data preprocessor, in the channel order of its output.
        img_std: per-channel std of the detector's data preprocessor.
        bgr_to_rgb: the data preprocessor's flag: True -> its outputs are RGB; False -> BGR, flipped to RGB here.
        resize_to_divisor: resize to the multiple of ``size_divisor`` nearest to the scaled size instead.
        size_divisor: that multiple (Light Flow's 64).
    """

    def __init__(self, flow_scale: float = 0.5, img_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 img_std: Sequence[float] = (58.395, 57.12, 57.375), bgr_to_rgb: bool = True,
                 resize_to_divisor: bool = False, size_divisor: int = 64, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0 < flow_scale <= 4:
            raise ValueError(f'flow_scale must be in (0, 4], got {flow_scale}')
        if len(img_mean) != 3 or len(img_std) != 3 or min(img_std) <= 0:
            raise ValueError(f'img_mean/img_std must be 3 values (std > 0), got {img_mean} and {img_std}')
        self.flow_scale = float(flow_scale)
        self.bgr_to_rgb = bool(bgr_to_rgb)
        self.resize_to_divisor = bool(resize_to_divisor)
        self.size_divisor = int(size_divisor)
        self.register_buffer('img_mean', torch.tensor(img_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer('img_std', torch.tensor(img_std, dtype=torch.float32).view(1, 3, 1, 1), False)

    def to_rgb255(self, img: Tensor) -> Tensor:
        """Undo the detector normalisation: (N, 3, H, W) normalised -> (N, 3, H, W) RGB in 0..255."""
        img = img * self.img_std + self.img_mean
        return img if self.bgr_to_rgb else img.flip(1)

    def flow_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the flow is computed at for (height, width) frames (:func:`lightflow.sizes.flow_size`)."""
        from lightflow.sizes import flow_size
        return flow_size(height, width, self.flow_scale, self.size_divisor if self.resize_to_divisor else None)

    def flow_inputs(self, img: Tensor, ref_img: Tensor) -> tuple[Tensor, Tensor, bool]:
        """The two frames as the flow sees them: RGB 0..255 at :meth:`flow_size`, and whether that size is a
        multiple of ``size_divisor``."""
        if img.dim() != 4 or img.shape != ref_img.shape or img.shape[1] != 3:
            raise ValueError(f'expected two (N, 3, H, W) frames of one shape, got {tuple(img.shape)} and '
                             f'{tuple(ref_img.shape)}')
        height, width = int(img.shape[-2]), int(img.shape[-1])  # ints: constants when traced for export
        pair = torch.cat([img, ref_img], dim=0)
        size = self.flow_size(height, width)
        if size != (height, width):
            # Resize first: bilinear weights sum to 1, so it commutes with the per-channel affine un-normalisation,
            # which then touches a quarter of the pixels.
            pair = F.interpolate(pair, size=size, mode='bilinear', align_corners=False)
        a, b = self.to_rgb255(pair).chunk(2, dim=0)
        div = self.size_divisor
        return a, b, size[0] % div == 0 and size[1] % div == 0


@MODELS.register_module()
class ZeroMotion(BaseModule):
    """No motion: a zero flow, so propagation copies the key frame's features unmoved (``FlowWarp`` with zero flow
    is the identity). The floor any flow must beat; no parameters, no gradient.

    Returns (N, 2, 1, 1) zeros: a flow on a one-cell grid covering the frame, which ``FlowWarp`` resizes per level.
    """

    def forward(self, img: Tensor, ref_img: Tensor, metas: Sequence[tuple[dict, dict]] | None = None) -> Tensor:
        """Zero flow from ``img`` (N, 3, H, W) to ``ref_img``: (N, 2, 1, 1). ``metas`` (the frames' metainfo, the
        motion contract) is unused."""
        if img.dim() != 4 or img.shape != ref_img.shape:
            raise ValueError(f'expected two (N, 3, H, W) frames of one shape, got {tuple(img.shape)} and '
                             f'{tuple(ref_img.shape)}')
        return img.new_zeros(img.shape[0], 2, 1, 1)


@MODELS.register_module()
class DISMotion(FrameMotion):
    """OpenCV DIS optical flow (Kroeger et al. 2016, ``cv2.DISOpticalFlow``) as a motion module.

    The detector-normalised frames are mapped back to RGB 0..255 and resized to the flow size exactly as
    ``LightFlowMotion`` does (``flow_scale``, optionally ``resize_to_divisor``), turned grey (uint8), and DIS runs
    on the CPU. The flow is returned on that grid in its own pixels, the contract of ``LightFlowMotion``.

    DIS has no gradient: a detector with it still trains (``FlowVideoDetector.loss``), the flow entering as a fixed
    input, and the detector's parameters learn around it.

    Args:
        preset: ``'ultrafast'``, ``'fast'`` or ``'medium'`` (OpenCV's presets; medium is the most accurate).
        **kwargs: :class:`FrameMotion` arguments (``flow_scale``, ``img_mean``, ``img_std``, ``bgr_to_rgb``,
            ``resize_to_divisor``).
    """

    def __init__(self, preset: str = 'medium', **kwargs) -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f'DISMotion: preset must be one of {DIS_PRESETS}, got {preset!r}')
        super().__init__(**kwargs)
        self.preset = preset

    def forward(self, img: Tensor, ref_img: Tensor, metas: Sequence[tuple[dict, dict]] | None = None) -> Tensor:
        """Flow from ``img`` to ``ref_img`` (for every pixel of ``img``, its displacement to ``ref_img``).

        Args:
            img: (N, 3, H, W) detector-normalised frame the flow is defined on.
            ref_img: (N, 3, H, W) detector-normalised frame it points to (the key frame).
            metas: per batch item, the two frames' metainfo (the motion contract; unused here).

        Returns:
            (N, 2, h, w) float32 flow (u, v) in pixels of the (h, w) flow grid, on ``img``'s device; no gradient.
        """
        with torch.no_grad():
            a, b, _ = self.flow_inputs(img, ref_img)
            # uint8 here (as DIS sees it anyway): a very dark float frame must not read as a 0..1 image.
            a, b = (x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy() for x in (a, b))
            flows = [dis_flow(x, y, self.preset) for x, y in zip(a, b)]
        return torch.stack(flows).to(img.device)

    def extra_repr(self) -> str:
        return f'preset={self.preset!r}, flow_scale={self.flow_scale}, resize_to_divisor={self.resize_to_divisor}'
