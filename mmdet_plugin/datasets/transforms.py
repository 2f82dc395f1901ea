"""Training clip sampling for key-frame video detectors (Light Flow paper, "Towards High Performance Video Object
Detection for Mobiles", section 4: training on T-1 key frames spaced up to l apart plus a current frame)."""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

from mmcv.transforms import BaseTransform

from mmdet.registry import TRANSFORMS

from ..utils import KEY_FRAME_INTERVAL, positive_integer

__all__ = ['KeyFrameClipSample', 'BlurLastKeyFrame']


@TRANSFORMS.register_module()
class KeyFrameClipSample(BaseTransform):
    """Sample a training clip of ``num_key_frames`` key frames and one current frame from ONE video.

    Used first in a training pipeline over :class:`CocoVIDDataset` (it needs the whole video, as mmdet's
    ``UniformRefFrameSample``); the current frame is ``video_infos['key_frame_id']`` (an index into the video's
    frames, set by ``TrackImgSampler``) or a random frame.

    Spacing, in ``frame_id`` units with ``l = key_frame_interval``: the last key frame is 0 .. l-1 frames before the
    current frame (0: the current frame is itself a key frame, as at test time every l-th frame is); each earlier
    key frame is 1 .. l frames before the next (``random_interval=False``: exactly l and the current frame's offset
    ``frame_id % l``, the test-time schedule). A frame missing from the video (filtered, or before its start) is
    replaced by the nearest existing frame inside the allowed range, else by repeating the earliest key frame, so
    frame ids are non-decreasing (duplicates only near a video's start or in one-frame videos).

    Output (lists of length T = num_key_frames + 1, ordered by frame id, current frame LAST) with every frame's info
    plus ``video_id``, ``video_length`` (frames in the video) and ``key_frame_flags = [False] * (T-1) + [True]``.
    ``PackTrackInputs`` turns the flags into ``key_frames_inds=[T-1]`` (mmdet's name for the frame that carries the
    loss, i.e. our current frame) and ``ref_frames_inds=[0, .., T-2]`` (the paper's key frames).

    Args:
        num_key_frames: key frames before the current frame (T - 1), >= 1.
        key_frame_interval: the detector's key-frame interval l, >= 1.
        random_interval: random spacing (paper's training) instead of the fixed test-time schedule.
    """

    def __init__(self, num_key_frames: int = 2, key_frame_interval: int = KEY_FRAME_INTERVAL,
                 random_interval: bool = True) -> None:
        # Integers only: 2.7 would be truncated by the frame arithmetic, not refused.
        self.num_key_frames = positive_integer('KeyFrameClipSample.num_key_frames', num_key_frames)
        self.key_frame_interval = positive_integer('KeyFrameClipSample.key_frame_interval', key_frame_interval)
        self.random_interval = random_interval

    def sample_indices(self, frame_ids: Sequence[int], current: int) -> list[int]:
        """Indices into ``frame_ids`` (sorted ascending) of the clip: key frames ascending, then ``current``."""
        interval = self.key_frame_interval
        position = {f: i for i, f in enumerate(frame_ids)}

        def pick(lo: int, hi: int, target: int) -> int | None:
            # An existing frame with lo <= frame_id <= hi: random, or the one nearest to ``target``.
            cands = [position[f] for f in range(max(lo, frame_ids[0]), hi + 1) if f in position]
            if not cands:
                return None
            if self.random_interval:
                return random.choice(cands)
            return min(cands, key=lambda i: (abs(frame_ids[i] - target), -frame_ids[i]))

        cur_f = frame_ids[current]
        offset = cur_f % interval
        keys = [pick(cur_f - interval + 1, cur_f, cur_f - offset)]
        if keys[0] is None:
            keys[0] = current
        while len(keys) < self.num_key_frames:
            prev_f = frame_ids[keys[-1]]
            nxt = pick(prev_f - interval, prev_f - 1, prev_f - interval)
            keys.append(keys[-1] if nxt is None else nxt)
        return keys[::-1] + [current]

    def transform(self, video_infos: dict) -> dict:
        images = video_infos['images']
        if not images:
            raise ValueError(f'KeyFrameClipSample: video {video_infos.get("video_id")} has no frames')
        current = video_infos.get('key_frame_id')
        if current is None:
            current = random.randrange(len(images))
        if not 0 <= current < len(images):
            raise ValueError(f'KeyFrameClipSample: key_frame_id {current} out of range for video '
                             f'{video_infos.get("video_id")} with {len(images)} frames')
        frame_ids = [info['frame_id'] for info in images]
        if any(a >= b for a, b in zip(frame_ids, frame_ids[1:])):
            raise ValueError(f'KeyFrameClipSample: frames of video {video_infos.get("video_id")} are not sorted by '
                             f'unique frame_id: {frame_ids[:10]}...')
        indices = self.sample_indices(frame_ids, current)
        results: dict[str, list] = defaultdict(list)
        for index in indices:
            frame = dict(images[index], video_id=video_infos['video_id'], video_length=len(images),
                         ori_video_length=len(images))
            for key, value in frame.items():
                results[key].append(value)
        results = dict(results)
        results['key_frame_flags'] = [False] * self.num_key_frames + [True]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_key_frames={self.num_key_frames}, '
                f'key_frame_interval={self.key_frame_interval}, random_interval={self.random_interval})')


@TRANSFORMS.register_module()
class BlurLastKeyFrame(BaseTransform):
    """Blur the last key frame of a training clip, so an aggregator has to use its memory of the earlier keys.

    The last key is the one whose features reach the current frame; when it is blurred, propagation alone has
    nothing better to warp, and a key-frame aggregator (``FlowGuidedGRU``) gains only if it learned to lean on the
    earlier keys. The blur is the synthetic VID generator's own (:func:`lightflow.data.synthetic.vid_render.degrade`:
    a horizontal / vertical streak or a box defocus of 3-9 px), drawn per clip. Place it after the frames are loaded
    (after ``TransformBroadcaster``), before ``PackTrackInputs``; the current frame and the annotations are untouched.

    Args:
        prob: probability that a clip's last key frame is blurred.
        lengths: blur lengths (px, odd) to draw from.
        modes: blur kinds to draw from: 'h', 'v', 'defocus'.
    """

    def __init__(self, prob: float = 0.5, lengths: Sequence[int] = (3, 5, 7, 9),
                 modes: Sequence[str] = ('h', 'v', 'defocus')) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'BlurLastKeyFrame: prob must be in [0, 1], got {prob}')
        if not lengths or any(int(n) != n or n < 1 or n % 2 == 0 for n in lengths):
            raise ValueError(f'BlurLastKeyFrame: lengths must be odd integers >= 1, got {lengths}')
        if not modes or any(m not in ('h', 'v', 'defocus') for m in modes):
            raise ValueError(f"BlurLastKeyFrame: modes must be among 'h', 'v', 'defocus', got {modes}")
        self.prob, self.lengths, self.modes = float(prob), tuple(int(n) for n in lengths), tuple(modes)

    def transform(self, results: dict) -> dict:
        from lightflow.data.synthetic.vid_render import degrade

        flags = results.get('key_frame_flags')
        if flags is None or flags.count(False) < 1 or not isinstance(results.get('img'), list):
            raise ValueError('BlurLastKeyFrame: expects a loaded clip of KeyFrameClipSample (a list of images and '
                             f'key_frame_flags), got key_frame_flags={flags}')
        if random.random() < self.prob:
            last_key = max(i for i, current in enumerate(flags) if not current)
            results['img'][last_key] = degrade(results['img'][last_key], random.choice(self.lengths),
                                               random.choice(self.modes))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, lengths={self.lengths}, modes={self.modes})'
