"""``OracleMotion``: the exact motion of the synthetic VID set as a motion module, the ceiling any flow can reach in
the detector (:mod:`lightflow.data.synthetic.vid_motion` rebuilds it from the scenes)."""
from __future__ import annotations

from typing import Sequence

import torch
from mmdet.registry import MODELS
from torch import Tensor

from lightflow.data.synthetic.vid_motion import exact_flow, scene_of_frame
from lightflow.warp import resize_flow

from .baseline_motion import FrameMotion

__all__ = ['OracleMotion']


@MODELS.register_module()
class OracleMotion(FrameMotion):
    """Exact flow from a synthetic VID frame to its key frame, on the motion grid the other motions use.

    It reads which frames it sees from the metainfo the detector passes (``motion(img, ref_img, metas)``): each
    frame's ``img_path`` names its video and frame in a set written by ``tools/make_synthetic_vid.py``; the set's
    marker file rebuilds the scene. The flow follows the frame through the pipeline's resize (``img_shape``) and
    horizontal flip, is zero on the batch padding, and is resized to :meth:`flow_size` like every
    :class:`FrameMotion`'s. Pixels occluded in the key keep the motion of their own surface.

    Args:
        **kwargs: :class:`FrameMotion` arguments (``flow_scale``, ...); only the flow grid uses them.
    """

    def forward(self, img: Tensor, ref_img: Tensor, metas: Sequence[tuple[dict, dict]] | None = None) -> Tensor:
        """Exact flow from ``img`` to ``ref_img``.

        Args:
            img: (N, 3, H, W) detector inputs of the frames the flow is defined on (only their size is used).
            ref_img: (N, 3, H, W) the key frames they point to.
            metas: per batch item, (the frame's metainfo, the key frame's metainfo); required.

        Returns:
            (N, 2, h, w) float32 flow (u, v) in pixels of the :meth:`flow_size` grid.
        """
        if img.dim() != 4 or img.shape != ref_img.shape:
            raise ValueError(f'expected two (N, 3, H, W) frames of one shape, got {tuple(img.shape)} and '
                             f'{tuple(ref_img.shape)}')
        if metas is None or len(metas) != img.shape[0]:
            raise ValueError(f'OracleMotion needs the metainfo of both frames of each of the {img.shape[0]} pairs '
                             f'(motion(img, ref_img, metas)), got {"none" if metas is None else len(metas)}')
        height, width = int(img.shape[-2]), int(img.shape[-1])
        flows = [self._pair_flow(meta, ref, (height, width)) for meta, ref in metas]
        return torch.cat(flows).to(img.device)

    def _pair_flow(self, meta: dict, ref: dict, size: tuple[int, int]) -> Tensor:
        for m, what in ((meta, 'frame'), (ref, 'key frame')):
            if 'img_path' not in m:
                raise ValueError(f'OracleMotion: the {what} metainfo has no img_path (keys: {sorted(m)}); exact motion '
                                 'exists only for frames of a synthetic VID set')
        scene, video, t = scene_of_frame(meta['img_path'])
        key_scene, key_video, k = scene_of_frame(ref['img_path'])
        if key_scene is not scene:
            raise ValueError(f'OracleMotion: frame {meta["img_path"]} and key frame {ref["img_path"]} are of '
                             f'different videos ({video}, {key_video})')
        if bool(meta.get('flip')) != bool(ref.get('flip')) or tuple(meta.get('img_shape', ())) != tuple(
                ref.get('img_shape', ())):
            raise ValueError(f'OracleMotion: frame {meta["img_path"]} and its key were transformed differently '
                             '(flip / resize); share the random parameters over the clip')
        flow, _ = exact_flow(scene, t, k)
        out = torch.from_numpy(flow).permute(2, 0, 1)[None]
        ih, iw = tuple(meta.get('img_shape', (scene.height, scene.width)))[:2]
        if (ih, iw) != (scene.height, scene.width):
            out = resize_flow(out, (ih, iw))
        if meta.get('flip'):
            if meta.get('flip_direction', 'horizontal') != 'horizontal':
                raise ValueError(f'OracleMotion: {meta["img_path"]}: flip_direction {meta.get("flip_direction")!r} '
                                 'is not supported (horizontal only)')
            out = out.flip(-1) * torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1)
        canvas = out.new_zeros(1, 2, *size)  # the batch padding (bottom / right) does not move
        canvas[..., :min(ih, size[0]), :min(iw, size[1])] = out[..., :size[0], :size[1]]
        grid = self.flow_size(*size)
        return canvas if grid == size else resize_flow(canvas, grid)
