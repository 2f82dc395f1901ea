"""``VideoDetectorRuntime``: a graph folder from ``tools/export_video_detector.py`` run frame by frame, without torch.

It mirrors ``FlowVideoDetector.predict``: a video's first frame is a key frame; the fixed policy makes every
``key_frame_interval``-th frame a key, the adaptive one (``type='motion'``) a frame whose flow to the key has a motion
statistic above ``threshold`` (the flow of the non-key graph, which that frame then reuses if it stays non-key), and
every frame ``max_interval`` after the key. Key frames run ``key_feats`` (and ``gru_init`` / ``gru_step`` with an
aggregator, restarting after ``aggregator_max_chain`` steps) and ``head``; other frames run ``nonkey`` on the cached
key. Only the current key is cached: memory stays flat. A single-frame detector's folder (``motion: false``: no
``nonkey`` graph) runs every frame as a key frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .manifest import load_manifest
from .postprocess import Detections, decode_detections, grid_anchors, motion_statistic

__all__ = ['BACKENDS', 'VideoDetectorRuntime', 'FrameInfo']

BACKENDS = ('onnxruntime', 'openvino')


class _OrtSession:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


class _OpenVinoSession:
    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), 'CPU', {
            'INFERENCE_NUM_THREADS': threads, 'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY',
            'NUM_STREAMS': 1})
        self.request = self.compiled.create_infer_request()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.request.infer(feeds)
        return [np.array(out[o], copy=True) for o in self.compiled.outputs]


@dataclass
class FrameInfo:
    """What the runtime did with the latest frame: its index in the video, key or not, the motion statistic."""

    frame_id: int
    is_key: bool
    motion_px: Optional[float] = None


@dataclass
class _Key:
    frame_id: int
    img: np.ndarray
    feats: list[np.ndarray]
    state: Optional[list[np.ndarray]] = None
    steps: int = 0


@dataclass
class _Profile:
    ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, t0: float) -> None:
        self.ms.setdefault(name, []).append(1e3 * (time.perf_counter() - t0))


class VideoDetectorRuntime:
    """Run an exported video detector on RGB uint8 frames, one call per frame, videos one after the other.

    Example:
        >>> rt = VideoDetectorRuntime('graphs/', backend='onnxruntime')
        >>> for frame in frames:                       # (H, W, 3) RGB uint8
        ...     dets = rt.process(frame)               # Detections: boxes (K, 4) in frame pixels, scores, labels
        >>> rt.reset()                                 # before the next video

    Args:
        folder: the graph folder (``manifest.json`` + graphs; digests checked).
        backend: ``'onnxruntime'`` or ``'openvino'``.
        threads: CPU threads per graph.
        profile: keep ms per part in ``self.profile.ms`` (preprocess, key_feats, gru, head, nonkey, decode).
    """

    def __init__(self, folder: str | Path, backend: str = 'onnxruntime', threads: int = 1,
                 profile: bool = False) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f'threads must be an int >= 1, got {threads!r}')
        self.folder = Path(folder)
        self.manifest = m = load_manifest(self.folder)
        cls = _OrtSession if backend == 'onnxruntime' else _OpenVinoSession
        self.sessions = {name: cls(self.folder / g['file'], threads) for name, g in m['graphs'].items()}
        self.inputs = {name: g['inputs'] for name, g in m['graphs'].items()}
        self.policy = dict(m['key_frame_policy'])
        if self.policy['type'] not in ('fixed', 'motion'):
            raise ValueError(f'{self.folder / "manifest.json"}: key-frame policy {self.policy["type"]!r} is not '
                             'one this runtime runs (fixed, motion)')
        norm = m['normalize']
        self._mean = np.asarray(norm['mean'], np.float32).reshape(3, 1, 1)
        self._std = np.asarray(norm['std'], np.float32).reshape(3, 1, 1)
        self._anchors: Optional[list[np.ndarray]] = None
        self.profile = _Profile() if profile else None
        self.last: Optional[FrameInfo] = None
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Start a new video: the next frame is a key frame with frame index 0."""
        self._key: Optional[_Key] = None
        self._next_frame = 0

    def set_policy(self, **changes: Any) -> None:
        """Change the key-frame policy's fields (``key_frame_interval=5``, ``type='motion', threshold=6``)."""
        new = {**self.policy, **changes}
        if not self.manifest.get('motion', True) and (new['type'] != 'fixed' or new['key_frame_interval'] != 1):
            raise ValueError(f'{self.folder / "manifest.json"}: a single-frame detector (no motion graph) runs '
                             f'every frame as a key frame; policy {changes} needs non-key frames')
        if new['type'] not in ('fixed', 'motion'):
            raise ValueError(f"policy type must be 'fixed' or 'motion', got {new['type']!r}")
        self.policy = new
        self.reset()

    # ------------------------------------------------------------------ steps
    def _run(self, name: str, *arrays: np.ndarray) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = self.sessions[name].run(dict(zip(self.inputs[name], arrays)))
        if self.profile is not None:
            self.profile.add(name, t0)
        return out

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, tuple[int, int], tuple[float, float]]:
        """(H, W, 3) RGB uint8 frame -> ((1, 3, Hp, Wp) normalised padded image, img_shape (h, w), scale (w, h)).

        A frame of another size than the manifest's is resized as the test pipeline's ``Resize(keep_ratio=True)``
        does (OpenCV bilinear, mmcv's rounding); ``ValueError`` when the result does not fit the graphs."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            desc = f'{frame.dtype} {frame.shape}' if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f'frame: expected an (H, W, 3) RGB uint8 array, got {desc}')
        m = self.manifest
        h0, w0 = frame.shape[:2]
        h, w = h0, w0
        if m['resize'] is not None:
            scale = m['resize']['scale']
            factor = min(max(scale) / max(h0, w0), min(scale) / min(h0, w0))
            w, h = int(w0 * factor + 0.5), int(h0 * factor + 0.5)
            if (h, w) != (h0, w0):
                import cv2
                frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        hp, wp = m['input_size']
        if h > hp or w > wp or -(-h // m['pad_size_divisor']) * m['pad_size_divisor'] != hp \
                or -(-w // m['pad_size_divisor']) * m['pad_size_divisor'] != wp:
            raise ValueError(f'frame {w0}x{h0} (WxH) becomes {w}x{h} after the test resize, but the graphs in '
                             f'{self.folder} take {m["frame_size"][1]}x{m["frame_size"][0]}; export for this size')
        chw = frame.transpose(2, 0, 1) if m['normalize']['bgr_to_rgb'] else frame[..., ::-1].transpose(2, 0, 1)
        # One pass per step, in place (fresh temporaries of the frame's size would cost ~5x more).
        img = np.empty((1, 3, hp, wp), np.float32)
        img[0, :, h:], img[0, :, :h, w:] = 0, 0
        dst = img[0, :, :h, :w]
        np.subtract(chw, self._mean, out=dst)
        np.divide(dst, self._std, out=dst)
        return img, (h, w), (w / w0, h / h0)

    def _key_frame(self, img: np.ndarray, frame_id: int, previous: Optional[_Key]) -> list[np.ndarray]:
        feats = self._run('key_feats', img)
        state, steps = None, 0
        if self.manifest['aggregator']:
            chain = self.manifest['aggregator_max_chain']
            levels = len(feats)
            if previous is None or (chain is not None and previous.steps >= chain):
                out = self._run('gru_init', *feats)
            else:
                out = self._run('gru_step', *feats, *previous.state, previous.img, img)
                steps = previous.steps + 1
            state, feats = out[:levels], out[levels:]
        self._key = _Key(frame_id, img, feats, state, steps)
        return self._run('head', *feats)

    def _decide(self, frame_id: int, key: _Key, img: np.ndarray) -> tuple[bool, Optional[float], Optional[list]]:
        """(is_key, motion statistic, the non-key graph's head outputs if it ran)."""
        p = self.policy
        if p['type'] == 'fixed':
            return frame_id % p['key_frame_interval'] == 0, None, None
        since = frame_id - key.frame_id
        if since >= (p.get('max_interval') or p['key_frame_interval']):
            return True, None, None
        *outs, flow = self._run('nonkey', *key.feats, key.img, img)
        motion_px = motion_statistic(flow, img.shape[-2:], p['statistic'])
        return motion_px > p['threshold'] and since >= p.get('min_interval', 1), motion_px, outs

    def process(self, frame: np.ndarray) -> Detections:
        """Detect objects in the next frame of the current video ((H, W, 3) RGB uint8); boxes in its pixels."""
        t0 = time.perf_counter()
        img, img_shape, scale = self.preprocess(frame)
        if self.profile is not None:
            self.profile.add('preprocess', t0)
        key, frame_id = self._key, self._next_frame
        self._next_frame += 1
        if key is not None and key.img.shape != img.shape:
            raise ValueError(f'frame size changed inside the video at frame {frame_id}')
        is_key, motion_px, outs = (True, None, None) if key is None else self._decide(frame_id, key, img)
        if is_key:
            outs = self._key_frame(img, frame_id, key)
        elif outs is None:
            outs = self._run('nonkey', *key.feats, key.img, img)[:-1]
        t0 = time.perf_counter()
        if self._anchors is None:
            head = self.manifest['head']
            levels = len(outs) // 2
            self._anchors = [grid_anchors(np.asarray(head['base_anchors'][i], np.float32), head['strides'][i],
                                          outs[i].shape[-2:]) for i in range(levels)]
        dets = decode_detections(outs, self.manifest['head'], img_shape, scale, self._anchors)
        if self.profile is not None:
            self.profile.add('decode_nms', t0)
        self.last = FrameInfo(frame_id, is_key, motion_px)
        return dets
