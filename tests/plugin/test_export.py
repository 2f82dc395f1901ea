"""The non-key-frame step exported as one graph: same head outputs as the detector's own path, in every runtime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmdet_plugin  # noqa: F401  (registers the plugin)
from lightflow.inference.backends import available_backends
from mmdet_plugin.export import NonKeyStep, export_nonkey_onnx, nonkey_inputs

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'vid'
CONFIG = CONFIG_DIR / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py'


@pytest.fixture(scope='module')
def detector():
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(CONFIG)).model).eval()
    with torch.no_grad():  # a flow that really moves things (the untrained motion predicts zero flow)
        model.motion.flownet.predictors[-1][-1].bias.copy_(torch.tensor([6.0, -3.0]))
    return model


def _frames(h: int = 160, w: int = 224):
    # Blocks of 16 px: features that vary across the frame, so that warping them visibly changes the head's output.
    g = torch.Generator().manual_seed(1)
    blocks = [torch.randn(1, 3, h // 16, w // 16, generator=g) * 2 for _ in range(2)]
    return tuple(torch.nn.functional.interpolate(b, size=(h, w), mode='nearest') for b in blocks)


def test_nonkey_step_matches_detector_path(detector):
    key, img = _frames()
    inputs = nonkey_inputs(detector, key, img)
    with torch.no_grad():
        out = NonKeyStep(detector).eval()(*inputs)
        warped = detector.warp(inputs[:-2], detector.motion(img, key))
        cls, box = detector.detector.bbox_head(tuple(warped))
        unwarped = detector.detector.bbox_head(tuple(inputs[:-2]))
    expected = (*cls, *box)
    assert len(out) == len(expected) == 4
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # The flow moved the features (so the parity above could fail): the head's outputs change by a good fraction of
    # their own spread.
    spread = (out[0] - out[0].mean()).abs().max()
    assert (out[0] - unwarped[0][0]).abs().max() > 0.1 * spread


@pytest.mark.parametrize('backend', [b for b in available_backends() if b != 'torch'])
def test_exported_nonkey_step_runs_in_runtime(detector, tmp_path, backend):
    import onnx
    key, img = _frames()
    inputs = nonkey_inputs(detector, key, img)
    path = export_nonkey_onnx(detector, tmp_path / 'nonkey.onnx', 160, 224)
    onnx.checker.check_model(onnx.load(str(path)))
    with torch.no_grad():
        expected = NonKeyStep(detector).eval()(*inputs)
    names = [f'key_feat{i}' for i in range(len(inputs) - 2)] + ['key_img', 'img']
    feeds = {n: x.numpy() for n, x in zip(names, inputs)}
    if backend == 'onnxruntime':
        import onnxruntime as ort
        got = ort.InferenceSession(str(path), providers=['CPUExecutionProvider']).run(None, feeds)
    else:
        import openvino as ov
        compiled = ov.Core().compile_model(str(path), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
        result = compiled(feeds)
        got = [result[compiled.output(i)] for i in range(len(expected))]
    for a, b in zip(got, expected):
        assert np.abs(a - b.numpy()).max() < 1e-4


def test_nonkey_export_rejects_bad_input(detector, tmp_path):
    with pytest.raises(ValueError, match='height must be a positive int, got 0'):
        export_nonkey_onnx(detector, tmp_path / 'x.onnx', 0, 224)
    single = MODELS.build(Config.fromfile(str(CONFIG.with_name('retinanet_mobilenetv2_1xb2-6e_synthvid.py'))).model)
    with pytest.raises(ValueError, match='needs a detector with a motion module'):
        NonKeyStep(single)


def test_nonkey_flow_comes_from_the_one_pixel_flow_path(detector, monkeypatch):
    """NonKeyStep's flow is FlowGraph.pixel_flow's: a zero flow there gives the head's outputs of the unwarped
    key features."""
    from lightflow.inference import FlowGraph
    key, img = _frames(64, 96)
    inputs = nonkey_inputs(detector, key, img)
    calls = []
    monkeypatch.setattr(FlowGraph, 'pixel_flow', staticmethod(
        lambda net, a, b, upsample=True: calls.append(upsample) or a.new_zeros(a.shape[0], 2, *a.shape[-2:])))
    with torch.no_grad():
        out = NonKeyStep(detector).eval()(*inputs)
        cls, box = detector.detector.bbox_head(tuple(inputs[:-2]))
    assert calls == [not detector.motion.flow_inputs(img, key)[2]]  # upsampled unless on the native 1/4 grid
    for a, b in zip(out, (*cls, *box)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_nonkey_export_goes_through_the_flow_exporter(detector):
    """The same exporter as the flow graph: weights sha256 in the metadata, opset < 17 and NaN weights refused."""
    import copy

    import onnx

    from lightflow.inference.onnx import initializers_sha256
    from mmdet_plugin.export import onnx_nonkey_bytes
    proto = onnx.load_from_string(onnx_nonkey_bytes(detector, 64, 96))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta['lightflow.weights_sha256'] == initializers_sha256(proto)
    with pytest.raises(ValueError, match='opset must be >= 17, got 16'):
        onnx_nonkey_bytes(detector, 64, 96, opset=16)
    broken = copy.deepcopy(detector)
    with torch.no_grad():
        broken.detector.bbox_head.retina_cls.bias[0] = float('nan')
    with pytest.raises(ValueError, match=r'the detector has 1 NaN/inf values in head\.retina_cls\.bias'):
        onnx_nonkey_bytes(broken, 64, 96)
