"""Issue 21: the exported video detector run by the torch-free runtime gives FlowVideoDetector's detections."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope

import mmdet_plugin  # noqa: F401  (registers the plugin)
from mmdet_plugin.export_video import export_video_detector

pytest.importorskip('onnxruntime')
from lightflow_deploy import VideoDetectorRuntime, load_manifest  # noqa: E402

init_default_scope('mmdet')
REPO = Path(__file__).resolve().parents[2]
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
H, W = 64, 96
CLASSES = ['a', 'b', 'c']


def tiny_retinanet() -> dict:
    """The wrapped detector of the deploy tests: a 3-class RetinaNet on a half-width MobileNetV2, strides 8 and 16."""
    head = dict(
        type='RetinaHead', num_classes=3, in_channels=16, feat_channels=16, stacked_convs=1,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=2, ratios=[0.5, 1.0],
                              strides=[8, 16]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))
    return dict(
        type='RetinaNet', backbone=dict(type='MobileNetV2', out_indices=(2, 4), widen_factor=0.5),
        neck=dict(type='FPN', in_channels=[16, 48], out_channels=16, num_outs=2), bbox_head=head,
        test_cfg=dict(nms_pre=40, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=15))


def build_detector(policy: dict, aggregator: bool, max_chain=None, random_flow: bool = False) -> torch.nn.Module:
    detector = tiny_retinanet()
    cfg = dict(type='FlowVideoDetector', detector=detector,
               motion=dict(type='LightFlowMotion', width_mult=0.25, img_mean=MEAN, img_std=STD, backend='torch',
                           zero_init_flow=not random_flow),
               aggregator=dict(type='FlowGuidedGRU', in_channels=16, hidden_channels=16, candidate_act='identity',
                               max_chain=max_chain) if aggregator else None,
               test_cfg=dict(key_frame_interval=policy.get('key_frame_interval', 3), key_frame_policy=policy),
               data_preprocessor=dict(type='TrackDataPreprocessor', mean=MEAN, std=STD, bgr_to_rgb=True,
                                      pad_size_divisor=32))
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg)).eval()
    with torch.no_grad():
        # Untrained heads score every anchor ~0.01: spread the scores so that detections pass score_thr and their
        # order is well defined; a flow that moves things (the untrained motion predicts zero flow).
        model.detector.bbox_head.retina_cls.weight.mul_(40)
        model.detector.bbox_head.retina_cls.bias.fill_(-1.0)
        model.motion.flownet.predictors[-1][-1].bias.copy_(torch.tensor([0.8, -0.4]))
    return model


def video(n: int, seed: int = 0, step: float = 3.0) -> list[np.ndarray]:
    """BGR uint8 frames: blocky texture sliding right by ``step`` px a frame, speeding up after frame 4."""
    g = np.random.default_rng(seed)
    base = np.kron(g.integers(0, 256, (H // 8 + 4, W // 8 + 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    out, x = [], 0.0
    for i in range(n):
        x += step * (1 if i < 5 else 4)
        xi = int(x) % 48
        out.append(np.ascontiguousarray(base[:H, xi:xi + W]))
    return out


def torch_predict(model, frames: list[np.ndarray], video_id: int = 0):
    results = []
    with torch.no_grad():
        for i, bgr in enumerate(frames):
            sample = DetDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), scale_factor=(1.0, 1.0),
                                                 frame_id=i, video_id=video_id, img_id=i))
            track = TrackDataSample()
            track.video_data_samples = [sample]
            img = torch.from_numpy(bgr).permute(2, 0, 1).contiguous()
            data = model.data_preprocessor(dict(inputs=[img[None]], data_samples=[track]), training=False)
            pred = model.predict(data['inputs'], data['data_samples'])[0].video_data_samples[0].pred_instances
            results.append((pred.bboxes.numpy(), pred.scores.numpy(), pred.labels.numpy(),
                            model.frame_records[-1].is_key))
    return results


def runtime_predict(rt: VideoDetectorRuntime, frames: list[np.ndarray]):
    rt.reset()
    out = []
    for bgr in frames:
        d = rt.process(np.ascontiguousarray(bgr[..., ::-1]))
        out.append((d.boxes, d.scores, d.labels, rt.last.is_key))
    return out


def assert_same(expected, got) -> None:
    assert len(expected) == len(got)
    for i, ((eb, es, el, ek), (gb, gs, gl, gk)) in enumerate(zip(expected, got)):
        assert ek == gk, f'frame {i}: key {ek} vs {gk}'
        assert len(eb) == len(gb) and len(eb) > 0, f'frame {i}: {len(eb)} vs {len(gb)} detections'
        np.testing.assert_array_equal(gl, el, err_msg=f'frame {i}')
        np.testing.assert_allclose(gb, eb, rtol=1e-3, atol=1e-3, err_msg=f'frame {i}')
        np.testing.assert_allclose(gs, es, rtol=1e-3, atol=1e-5, err_msg=f'frame {i}')


@pytest.mark.parametrize('aggregator', [False, True])
def test_runtime_matches_detector_fixed_interval(tmp_path, aggregator):
    model = build_detector(dict(type='fixed'), aggregator, max_chain=2 if aggregator else None)
    export_video_detector(model, tmp_path / 'g', (H, W), CLASSES, resize_scale=(W, H))
    frames = video(8)
    expected = torch_predict(model, frames)
    assert [e[3] for e in expected] == [True, False, False, True, False, False, True, False]
    # The non-key frames' detections come from warped features: they differ from the key frame's.
    assert not np.allclose(expected[1][0][:3], expected[0][0][:3], atol=0.05)
    rt = VideoDetectorRuntime(tmp_path / 'g')
    assert_same(expected, runtime_predict(rt, frames))
    # A new video resets the key and (with the GRU) the state: the same frames give the same detections again.
    assert_same(expected, runtime_predict(rt, frames))


@pytest.mark.parametrize('statistic', ['mean', 'p90_relative'])
def test_adaptive_policy_picks_the_same_key_frames(tmp_path, statistic):
    frames = video(12, step=2.0)
    # A flow network with random weights (its flow depends on the frames); the threshold: the median statistic of a
    # first run, so that the policy both keeps and promotes frames.
    probe = build_detector(dict(type='motion', threshold=1e6, statistic=statistic, max_interval=6), True,
                           random_flow=True)
    torch_predict(probe, frames)
    threshold = float(np.median([r.motion_px for r in probe.frame_records if r.motion_px is not None]))
    policy = dict(type='motion', threshold=threshold, statistic=statistic, max_interval=6)
    model = build_detector(policy, aggregator=True, random_flow=True)
    export_video_detector(model, tmp_path / 'g', (H, W), CLASSES, resize_scale=(W, H))
    manifest = load_manifest(tmp_path / 'g')
    assert manifest['key_frame_policy']['type'] == 'motion' and manifest['key_frame_policy']['threshold'] == threshold
    expected = torch_predict(model, frames)
    keys = [e[3] for e in expected]
    assert 1 < sum(keys) < len(keys), keys  # both decisions happen
    motion = [r.motion_px for r in list(model.frame_records)[-12:]]
    rt = VideoDetectorRuntime(tmp_path / 'g')
    rt.reset()
    got_motion = []
    for bgr in frames:
        rt.process(np.ascontiguousarray(bgr[..., ::-1]))
        got_motion.append(rt.last.motion_px)
    for a, b in zip(motion, got_motion):
        assert (a is None) == (b is None) and (a is None or abs(a - b) < 1e-3 * max(1.0, a)), (motion, got_motion)
    assert_same(expected, runtime_predict(rt, frames))


def test_tampered_graph_and_other_frame_size_refused(tmp_path):
    model = build_detector(dict(type='fixed'), aggregator=False)
    export_video_detector(model, tmp_path / 'g', (H, W), CLASSES, resize_scale=(W, H))
    rt = VideoDetectorRuntime(tmp_path / 'g')
    with pytest.raises(ValueError, match=r'frame 200x64 \(WxH\) becomes 96x31 after the test resize, but the '
                                         r'graphs .* take 96x64'):
        rt.process(np.zeros((64, 200, 3), np.uint8))
    big = rt.process(np.zeros((2 * H, 2 * W, 3), np.uint8))  # resized as the test pipeline does: boxes x2
    small = VideoDetectorRuntime(tmp_path / 'g').process(np.zeros((H, W, 3), np.uint8))
    np.testing.assert_allclose(big.boxes, 2 * small.boxes, rtol=1e-4, atol=1e-3)
    manifest = json.loads((tmp_path / 'g' / 'manifest.json').read_text())
    manifest['format_version'] = 99
    (tmp_path / 'g' / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match='manifest.json: format version 99 is newer'):
        VideoDetectorRuntime(tmp_path / 'g')
    manifest['format_version'] = 1
    (tmp_path / 'g' / 'manifest.json').write_text(json.dumps(manifest))
    with open(tmp_path / 'g' / 'head.onnx', 'ab') as f:
        f.write(b'\0')
    with pytest.raises(ValueError, match=r'head.onnx: sha256 differs from .*manifest.json'):
        VideoDetectorRuntime(tmp_path / 'g')


BLOCK_TORCH = '''
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'torchvision', 'mmcv', 'mmdet', 'mmengine', 'lightflow'}:
            raise ImportError(f'blocked: {name}')
sys.meta_path.insert(0, _Block())
'''


def test_runtime_never_imports_torch(tmp_path):
    model = build_detector(dict(type='fixed'), aggregator=True)
    export_video_detector(model, tmp_path / 'g', (H, W), CLASSES, resize_scale=(W, H))
    frames = tmp_path / 'frames'
    frames.mkdir()
    import cv2
    for i, bgr in enumerate(video(4)):
        cv2.imwrite(str(frames / f'{i:04d}.png'), bgr)
    code = BLOCK_TORCH + f'''
sys.argv = ['deploy_video.py', {str(tmp_path / 'g')!r}, {str(frames)!r}, '--out', {str(tmp_path / 'r.json')!r}]
import runpy
runpy.run_path({str(REPO / 'tools' / 'deploy_video.py')!r}, run_name='__main__')
'''
    check = '\nbad = [m for m in sys.modules if m.split(".")[0] in {"torch", "mmcv", "mmdet", "mmengine"}]\n' \
            'assert not bad, bad\nprint("clean")\n'
    env = {'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'}
    proc = subprocess.run([sys.executable, '-c', code.replace("runpy.run_path", "try:\n    runpy.run_path")
                           .replace("run_name='__main__')", "run_name='__main__')\nexcept SystemExit as e:\n"
                                    "    assert not e.code, e.code") + check],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and 'clean' in proc.stdout, proc.stderr[-2000:]
    result = json.loads((tmp_path / 'r.json').read_text())
    assert len(result['frames']) == 4 and result['frames'][0]['is_key'] and result['frames'][0]['detections']


def test_deploy_video_refuses_bad_input(tmp_path):
    from lightflow_deploy.cli import main
    model = build_detector(dict(type='fixed'), aggregator=False)
    export_video_detector(model, tmp_path / 'g', (H, W), CLASSES, resize_scale=(W, H))
    bad = tmp_path / 'broken.mp4'
    bad.write_bytes(b'not a video')
    empty = tmp_path / 'empty'
    empty.mkdir()
    out = tmp_path / 'r.json'
    for argv, message in [([str(bad)], 'broken.mp4: not a readable video or no frames in it'),
                          ([str(empty)], 'empty: no frames'),
                          ([str(bad), '--out-video', str(bad)], '--out .*broken.mp4: would overwrite the input video')]:
        err = subprocess.run([sys.executable, str(REPO / 'tools' / 'deploy_video.py'), str(tmp_path / 'g'),
                              argv[0], '--out', str(out), *argv[1:]], capture_output=True, text=True,
                             env={'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'}, timeout=120).stderr
        assert err.count('\n') == 1 and err.startswith('error: '), err
        assert __import__('re').search(message, err), err
        assert not out.exists()
    assert bad.read_bytes() == b'not a video'
