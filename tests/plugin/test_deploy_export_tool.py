"""Issue 21: tools/export_video_detector.py itself (config + checkpoint -> graphs + manifest), the single-frame export
(key_feats + head only, every frame a key) and the numpy decode + NMS against mmdet's own."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict

from tests.plugin.test_deploy import (CLASSES, H, MEAN, STD, W, assert_same, build_detector, runtime_predict,
                                      tiny_retinanet, torch_predict, video)

pytest.importorskip('onnxruntime')
from lightflow_deploy import VideoDetectorRuntime, load_manifest  # noqa: E402
from lightflow_deploy.postprocess import decode_detections, grid_anchors  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, model, name: str) -> tuple[Path, Path]:
    """A config file (the model's dict, a test pipeline with Resize, class names) and a checkpoint of ``model``."""
    cfg = dict(model.cfg_dict)
    text = (f"default_scope = 'mmdet'\ncustom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)\n"
            f'model = {cfg!r}\n'
            f"test_dataloader = dict(dataset=dict(metainfo=dict(classes={tuple(CLASSES)!r}), pipeline=["
            f"dict(type='LoadImageFromFile'), dict(type='Resize', scale=({W}, {H}), keep_ratio=True)]))\n")
    config = tmp_path / f'{name}.py'
    config.write_text(text)
    ckpt = tmp_path / f'{name}.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': CLASSES}}}, ckpt)
    return config, ckpt


def _built(policy: dict, aggregator: bool, motion: bool = True):
    """build_detector's model with the config dict it was built from (``cfg_dict``)."""
    import mmdet_plugin.models  # noqa: F401
    from mmdet.registry import MODELS
    model = build_detector(policy, aggregator)
    cfg = _detector_dict(policy, aggregator, motion)
    if not motion:
        torch.manual_seed(0)
        single = MODELS.build(ConfigDict(cfg)).eval()
        single.detector.load_state_dict(model.detector.state_dict())
        model = single
    model.cfg_dict = cfg
    return model


def _detector_dict(policy: dict, aggregator: bool, motion: bool) -> dict:
    detector = tiny_retinanet()
    return dict(type='FlowVideoDetector', detector=detector,
                motion=dict(type='LightFlowMotion', width_mult=0.25, img_mean=MEAN, img_std=STD, backend='torch',
                            zero_init_flow=True) if motion else None,
                aggregator=dict(type='FlowGuidedGRU', in_channels=16, hidden_channels=16, candidate_act='identity')
                if aggregator else None,
                test_cfg=dict(key_frame_interval=policy.get('key_frame_interval', 3) if motion else 1,
                              key_frame_policy=policy if motion else dict(type='fixed')),
                data_preprocessor=dict(type='TrackDataPreprocessor', mean=MEAN, std=STD, bgr_to_rgb=True,
                                       pad_size_divisor=32))


def test_export_tool_writes_graphs_and_manifest_and_refuses_bad_input(load_tool, tmp_path):
    model = _built(dict(type='fixed'), aggregator=True)
    config, ckpt = write_config(tmp_path, model, 'gru')
    tool = load_tool('export_video_detector')
    out = tmp_path / 'graphs'
    manifest = tool.main([str(config), str(ckpt), '--out', str(out)])
    names = {'key_feats', 'head', 'nonkey', 'gru_init', 'gru_step'}
    assert set(manifest['graphs']) == names
    assert sorted(p.name for p in out.iterdir()) == sorted([f'{n}.onnx' for n in names] + ['manifest.json'])
    on_disk = json.loads((out / 'manifest.json').read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk['frame_size'] == [H, W] and on_disk['input_size'] == [64, 96] and on_disk['classes'] == CLASSES
    assert on_disk['resize'] == {'scale': [W, H], 'keep_ratio': True} and on_disk['motion'] is True
    assert on_disk['key_frame_policy']['type'] == 'fixed' and on_disk['key_frame_policy']['key_frame_interval'] == 3
    assert on_disk['aggregator'] is True and on_disk['head']['num_classes'] == 3
    assert on_disk['head']['test_cfg']['nms_pre'] == 40 and on_disk['head']['test_cfg']['max_per_img'] == 15
    assert on_disk['normalize']['mean'] == pytest.approx(list(MEAN)) and on_disk['normalize']['bgr_to_rgb'] is True
    for name, entry in on_disk['graphs'].items():
        assert entry['sha256'] == hashlib.sha256((out / entry['file']).read_bytes()).hexdigest(), name
    # The exported detector runs and gives the PyTorch detector's detections.
    frames = video(4)
    assert_same(torch_predict(model, frames), runtime_predict(VideoDetectorRuntime(out), frames))
    # A tampered graph is refused by its digest; --out may not be an input; a checkpoint of another model is refused.
    data = bytearray((out / 'nonkey.onnx').read_bytes())
    data[-1] ^= 1
    (out / 'nonkey.onnx').write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r'nonkey.onnx: sha256 differs from .*manifest.json'):
        load_manifest(out)
    with pytest.raises(ValueError, match='--out'):
        tool.main([str(config), str(ckpt), '--out', str(ckpt)])
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}}, other)
    with pytest.raises(ValueError, match=r'other.pth: .* model weights missing'):
        tool.main([str(config), str(other), '--out', str(tmp_path / 'g2')])
    assert not (tmp_path / 'g2').exists()


def test_single_frame_detector_exports_key_graphs_only_and_runs_every_frame_as_key(load_tool, tmp_path):
    model = _built(dict(type='fixed'), aggregator=False, motion=False)
    assert model.motion is None
    config, ckpt = write_config(tmp_path, model, 'single')
    manifest = load_tool('export_video_detector').main([str(config), str(ckpt), '--out', str(tmp_path / 'g')])
    assert set(manifest['graphs']) == {'key_feats', 'head'} and manifest['motion'] is False
    assert manifest['key_frame_policy'] == {'type': 'fixed', 'key_frame_interval': 1}
    frames = video(4)
    expected = torch_predict(model, frames)
    assert all(e[3] for e in expected)
    rt = VideoDetectorRuntime(tmp_path / 'g')
    assert_same(expected, runtime_predict(rt, frames))
    with pytest.raises(ValueError, match='single-frame detector'):
        rt.set_policy(key_frame_interval=5)


def test_numpy_decode_and_nms_equal_mmdet(tmp_path):
    """Heads whose scores put many boxes above score_thr (the nms_pre cut, the max_per_img prefix shortcut and the
    full NMS all run): the same boxes, scores and labels as RetinaHead.predict_by_feat."""
    from mmengine.structures import InstanceData  # noqa: F401  (mmdet's result type)
    model = build_detector(dict(type='fixed'), aggregator=False)
    head_module = model.detector.bbox_head
    export_dir = tmp_path / 'g'
    from mmdet_plugin.export_video import export_video_detector
    head = export_video_detector(model, export_dir, (H, W), CLASSES, resize_scale=(W, H))['head']
    g = torch.Generator().manual_seed(0)
    for trial, (max_per_img, nms_pre, spread) in enumerate([(15, 40, 3.0), (100, 1000, 3.0), (5, 200, 6.0),
                                                            (30, 300, 1.5)]):
        head['test_cfg'].update(max_per_img=max_per_img, nms_pre=nms_pre)
        head_module.test_cfg.max_per_img, head_module.test_cfg.nms_pre = max_per_img, nms_pre
        shapes = [(8, 12), (4, 6)]
        cls = [torch.randn(1, 2 * 3, h, w, generator=g) * spread - 2 for h, w in shapes]
        reg = [torch.randn(1, 2 * 4, h, w, generator=g) * 0.5 for h, w in shapes]
        meta = dict(img_shape=(H, W), scale_factor=(1.5, 1.25), ori_shape=(int(H / 1.25), int(W / 1.5)))
        with torch.no_grad():
            want = head_module.predict_by_feat(cls, reg, batch_img_metas=[meta], rescale=True)[0]
        anchors = [grid_anchors(np.asarray(head['base_anchors'][i], np.float32), head['strides'][i], s)
                   for i, s in enumerate(shapes)]
        got = decode_detections([t.numpy() for t in cls + reg], head, (H, W), (1.5, 1.25), anchors)
        assert len(got.scores) == len(want.scores) > 0, trial
        assert trial != 1 or len(got.scores) > 15  # more than the small settings keep
        np.testing.assert_allclose(got.scores, want.scores.numpy(), rtol=1e-6, err_msg=str(trial))
        # Equal float32 scores (saturated sigmoids) have no defined order in mmdet (torch's sort): compare in a
        # canonical order (score, label, box).
        g_order, w_order = (np.lexsort((b[:, 0], lab, -sc)) for b, sc, lab in (
            (got.boxes, got.scores, got.labels), (want.bboxes.numpy(), want.scores.numpy(), want.labels.numpy())))
        np.testing.assert_array_equal(got.labels[g_order], want.labels.numpy()[w_order], err_msg=str(trial))
        np.testing.assert_allclose(got.boxes[g_order], want.bboxes.numpy()[w_order], rtol=1e-5, atol=1e-4,
                                   err_msg=str(trial))


def test_batched_nms_equals_mmcv_including_the_max_num_shortcut():
    from mmcv.ops import batched_nms as mmcv_batched_nms

    from lightflow_deploy.postprocess import batched_nms
    g = np.random.default_rng(0)
    # 40 near-copies of one box (best scores: the first 5 * max_num boxes keep only 1, so the shortcut must fall
    # back to the full NMS), then 200 random boxes of 4 classes.
    base = np.array([50, 40, 90, 100], np.float32)
    copies = base + g.normal(0, 1.0, (40, 4)).astype(np.float32)
    xy = g.uniform(0, 250, (200, 2)).astype(np.float32)
    boxes = np.concatenate([copies, np.concatenate([xy, xy + g.uniform(8, 60, (200, 2))], 1).astype(np.float32)])
    scores = np.concatenate([g.uniform(0.9, 1.0, 40), g.uniform(0.05, 0.9, 200)]).astype(np.float32)
    labels = np.concatenate([np.zeros(40, np.int64), g.integers(0, 4, 200)])
    for max_num in (5, 8, 30, -1):
        dets, keep = mmcv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels),
                                      dict(type='nms', iou_threshold=0.5))
        want = keep.numpy()[:max_num if max_num > 0 else None]
        got = batched_nms(boxes, scores, labels, 0.5, max_num=max_num)
        np.testing.assert_array_equal(got, want, err_msg=str(max_num))
    assert len(batched_nms(boxes, scores, labels, 0.5, max_num=8)) == 8


def test_weighted_average_aggregator_exports_and_matches(tmp_path):
    """FlowGuidedWeightedAverage (init_state and output: identity) through gru_init / gru_step, restarts included."""
    from mmdet.registry import MODELS

    from mmdet_plugin.export_video import export_video_detector
    model = build_detector(dict(type='fixed'), aggregator=True, max_chain=2)
    torch.manual_seed(1)
    model.aggregator = MODELS.build(ConfigDict(type='FlowGuidedWeightedAverage', in_channels=16, embed_channels=8,
                                               max_chain=2)).eval()
    manifest = export_video_detector(model, tmp_path / 'g', (H, W), CLASSES, resize_scale=(W, H))
    assert {'gru_init', 'gru_step'} <= set(manifest['graphs']) and manifest['aggregator_max_chain'] == 2
    frames = video(8)
    expected = torch_predict(model, frames)
    # The aggregated key features differ from the plain ones: the later keys' detections are not the DFF ones.
    model.aggregator, aggregated = None, model.aggregator
    plain = torch_predict(model, frames)
    model.aggregator = aggregated
    a, b = expected[3][1], plain[3][1]
    assert len(a) != len(b) or not np.allclose(a, b, atol=1e-4)
    assert_same(expected, runtime_predict(VideoDetectorRuntime(tmp_path / 'g'), frames))
