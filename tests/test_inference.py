"""estimate_flow's fast path: equal to the plain network, cached per weights, differentiable outside it."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import lightflow
from lightflow import (FlowGraph, available_backends, estimate_flow, flow_estimator, lightflow_w0_5, lightflow_w0_75,
                       lightflow_w1_0)
from lightflow.inference import to_image_batch


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so folding them into the convs is really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
    return model


def _plain_flow(model: nn.Module, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():  # grad mode on -> estimate_flow takes the plain network
        return estimate_flow(model, img1, img2).detach()


def _pair(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 255, torch.rand(n, 3, h, w, generator=g) * 255


BACKENDS = available_backends()


@pytest.mark.parametrize('backend', ['auto', *BACKENDS])
@pytest.mark.parametrize(('factory', 'size', 'batch'), [
    (lightflow_w1_0, (97, 131), 1), (lightflow_w0_75, (128, 128), 1), (lightflow_w0_5, (67, 101), 2),
    (lightflow_w0_5, (375, 500), 1)])
def test_backends_match_plain_network(factory, size: tuple[int, int], batch: int, backend: str) -> None:
    torch.manual_seed(0)
    model = _randomize_bn(factory()).eval()
    img1, img2 = _pair(batch, *size)
    plain = _plain_flow(model, img1, img2)
    with torch.inference_mode():
        flow = estimate_flow(model, img1, img2, backend=backend)
    assert flow.shape == plain.shape and flow.dtype == torch.float32
    assert plain.abs().max() > 1.0  # a meaningful comparison, not two zero maps
    assert (flow - plain).abs().max() < 1e-3  # pixels
    chosen = flow_estimator(model, backend).selected[(batch, 3, *size)]
    assert chosen == backend if backend != 'auto' else chosen in BACKENDS


def test_backends_match_on_real_pair(shared_data) -> None:
    from lightflow.io import read_image
    pair = shared_data / 'FlyingChairs_mini' / 'data' / '00001_img1.ppm'
    img1, img2 = (torch.from_numpy(read_image(pair.with_name(pair.name.replace('img1', f'img{k}')))).permute(2, 0, 1)
                  .float() for k in (1, 2))
    model = lightflow.load_pretrained('lightflow_w0.5_synthetic')
    plain = _plain_flow(model, img1, img2)
    for backend in BACKENDS:
        with torch.inference_mode():
            flow = estimate_flow(model, img1, img2, backend=backend)
        assert (flow - plain).abs().max() < 1e-3, backend


def test_graph_folds_batchnorm_exactly() -> None:
    torch.manual_seed(0)
    model = _randomize_bn(lightflow_w0_5()).eval()
    img1, img2 = _pair(1, 64, 128)
    folded, unfolded = FlowGraph(model), FlowGraph(model, fold=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(img1, img2), unfolded(img1, img2), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(unfolded(img1, img2), _plain_flow(model, img1, img2), atol=0, rtol=0)


def test_estimator_cached_per_model_and_backend() -> None:
    model = lightflow_w0_5().eval()
    assert flow_estimator(model) is flow_estimator(model)
    assert flow_estimator(model, 'torch') is not flow_estimator(model)


def test_cache_rebuilt_when_weights_change() -> None:
    torch.manual_seed(0)
    model, other = _randomize_bn(lightflow_w0_5(), 1).eval(), _randomize_bn(lightflow_w0_5(), 2).eval()
    img1, img2 = _pair(1, 64, 128)
    with torch.inference_mode():
        before = estimate_flow(model, img1, img2)
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        after = estimate_flow(model, img1, img2)
    assert (after - before).abs().max() > 0.1
    torch.testing.assert_close(after, _plain_flow(other, img1, img2), atol=1e-3, rtol=0)

    # An in-place update as an optimizer step does it.
    with torch.no_grad():
        model.predictors[-1][-1].bias.add_(1.0)
    with torch.inference_mode():
        stepped = estimate_flow(model, img1, img2)
    torch.testing.assert_close(stepped, _plain_flow(model, img1, img2), atol=1e-3, rtol=0)
    assert (stepped - after).abs().max() > 1.0


def test_model_stays_copyable_and_state_dict_clean() -> None:
    model = lightflow_w0_5().eval()
    keys = set(model.state_dict())
    img1, img2 = _pair(1, 64, 64)
    with torch.inference_mode():
        flow = estimate_flow(model, img1, img2)
    assert set(model.state_dict()) == keys
    clone = copy.deepcopy(model)
    with torch.inference_mode():
        torch.testing.assert_close(estimate_flow(clone, img1, img2), flow)


def test_gradient_flows_in_train_mode() -> None:
    torch.manual_seed(0)
    model = lightflow_w0_5().train()
    img1, img2 = _pair(2, 64, 96)
    flow = estimate_flow(model, img1, img2)
    assert flow.requires_grad
    flow.abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_gradient_flows_to_images_in_eval_mode() -> None:
    model = lightflow_w0_5().eval()
    img1, img2 = _pair(1, 64, 64)
    img1.requires_grad_(True)
    estimate_flow(model, img1, img2).square().sum().backward()
    assert img1.grad is not None and img1.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_numpy_and_unbatched_inputs() -> None:
    model = _randomize_bn(lightflow_w0_5()).eval()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    ta, tb = torch.from_numpy(a).permute(2, 0, 1).float(), torch.from_numpy(b).permute(2, 0, 1).float()
    with torch.inference_mode():
        from_numpy = estimate_flow(model, a, b)
        from_chw = estimate_flow(model, ta, tb)
        from_batch = estimate_flow(model, ta[None], tb[None])
    assert from_numpy.shape == (1, 2, 70, 90)
    torch.testing.assert_close(from_numpy, from_batch)
    torch.testing.assert_close(from_chw, from_batch)
    assert to_image_batch(a).dtype == torch.float32 and to_image_batch(a).shape == (1, 3, 70, 90)


@pytest.mark.parametrize(('img1', 'img2', 'match'), [
    (torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 80), r'same shape.*\(1, 3, 64, 64\) and \(1, 3, 64, 80\)'),
    (torch.zeros(2, 3, 64, 64), torch.zeros(1, 3, 64, 64), r'\(2, 3, 64, 64\) and \(1, 3, 64, 64\)'),
    (np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8), r'img1: numpy images must be RGB.*\(64, 64\)'),
    (torch.zeros(1, 3, 64, 64), np.zeros((64, 64, 4), np.uint8), r'img2: numpy.*\(64, 64, 4\)'),
    ([0.0], [0.0], r'img1: expected a tensor or numpy array, got list'),
])
def test_bad_inputs_raise(img1, img2, match: str) -> None:
    model = lightflow_w0_5().eval()
    with pytest.raises(ValueError, match=match), torch.inference_mode():
        estimate_flow(model, img1, img2)


def test_unknown_backend_rejected() -> None:
    with pytest.raises(ValueError, match="backend must be one of .* got 'onnx'"):
        estimate_flow(lightflow_w0_5().eval(), torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), backend='onnx')


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_missing_runtime_named_with_extra(monkeypatch, backend: str) -> None:
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == backend else real(name, *a))
    with pytest.raises(ImportError, match=rf"backend '{backend}' needs the {backend} package: pip install "
                                          r"'lightflow\[deploy\]'"):
        estimate_flow(lightflow_w0_5().eval(), torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), backend=backend)


def test_runtime_refuses_non_cpu_fp32_model() -> None:
    model = lightflow_w0_5().eval().double()
    with pytest.raises(ValueError, match="backend 'onnxruntime' runs fp32 models on the CPU; this model is "
                                         'torch.float64'), torch.inference_mode():
        estimate_flow(model, torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), backend='onnxruntime')
    with torch.inference_mode():
        flow = estimate_flow(model, torch.zeros(3, 64, 64), torch.zeros(3, 64, 64))
    assert flow.dtype == torch.float64 and flow_estimator(model).selected[(1, 3, 64, 64)] == 'torch'


# ---------------------------------------------------------------- one frames -> pixel-flow path (issue 15, item 1)
OFFSET = 1000.0  # px added by the spy below: a route whose flow shows it ran FlowGraph.pixel_flow


def _offset_pixel_flow(monkeypatch) -> list[bool]:
    """Make every FlowGraph.pixel_flow call record its ``upsample`` and add OFFSET px to the flow it returns."""
    calls, real = [], FlowGraph.pixel_flow

    def spy(net, img1, img2, upsample=True):
        calls.append(upsample)
        return real(net, img1, img2, upsample) + OFFSET
    monkeypatch.setattr(FlowGraph, 'pixel_flow', staticmethod(spy))
    return calls


def test_every_flow_route_runs_the_one_pixel_flow_path(monkeypatch) -> None:
    from lightflow.engine.model import LightFlowModel
    torch.manual_seed(0)
    model = LightFlowModel(width_mult=0.25, backend='torch').eval()
    net = model.flownet
    img1, img2 = _pair(1, 64, 96)

    def routes() -> list[torch.Tensor]:
        with torch.enable_grad():  # the plain differentiable network
            plain = estimate_flow(net, img1, img2).detach()
        with torch.no_grad():  # FlowEstimator's BN-folded graph, and LightFlowModel in predict mode
            folded = estimate_flow(net, img1, img2, backend='torch')
            predicted = model.predict(torch.stack([img1, img2], dim=1))[0]['pred_flow'][None]
        return [plain, folded, predicted]
    before = routes()
    calls = _offset_pixel_flow(monkeypatch)
    after = routes()
    assert calls == [True, True, True]
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b + OFFSET, atol=1e-3, rtol=0)


def test_flow_graph_runs_the_networks_own_decoder(monkeypatch) -> None:
    """FlowGraph (folded or not) decodes with ``LightFlow.forward_features``, not a copy of its loop."""
    torch.manual_seed(0)
    model = _randomize_bn(lightflow_w0_5()).eval()
    img1, img2 = _pair(1, 64, 64)
    with torch.no_grad():
        before = [FlowGraph(model)(img1, img2), FlowGraph(model, fold=False)(img1, img2)]
    calls, real = [], lightflow.LightFlow.forward_features

    def spy(self, x):
        calls.append(tuple(x.shape))
        return real(self, x) + 0.05  # 0.05 * div_flow = 1 px everywhere
    monkeypatch.setattr(lightflow.LightFlow, 'forward_features', spy)
    with torch.no_grad():
        after = [FlowGraph(model)(img1, img2), FlowGraph(model, fold=False)(img1, img2)]
    assert calls == [(1, 6, 64, 64)] * 2
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b + 1.0, atol=1e-4, rtol=0)


def test_pixel_flow_without_upsampling_needs_a_multiple_of_64() -> None:
    net = lightflow_w0_5().eval()
    with pytest.raises(ValueError, match='without upsampling needs H and W divisible by 64, got 64x96'):
        FlowGraph.pixel_flow(net, *_pair(1, 64, 96), upsample=False)


# ---------------------------------------------------------------- backend names: one registry, one check
def test_a_registered_backend_is_accepted_everywhere(monkeypatch) -> None:
    """A backend registered after import is accepted by estimate_flow and LightFlowModel (no frozen name tuple)."""
    import lightflow.inference.backends as runtime
    from lightflow.engine.model import LightFlowModel
    monkeypatch.setitem(runtime._REGISTRY, 'eager_copy', runtime.Backend('eager_copy'))  # the eager graph again
    model = LightFlowModel(width_mult=0.25, backend='eager_copy').eval()
    img1, img2 = _pair(1, 64, 64)
    with torch.no_grad():
        flow = model.predict(torch.stack([img1, img2], dim=1))[0]['pred_flow']
    assert flow_estimator(model.flownet, 'eager_copy').selected == {(1, 3, 64, 64): 'eager_copy'}
    torch.testing.assert_close(flow[None], _plain_flow(model.flownet, img1, img2), atol=1e-3, rtol=0)


def test_lightflow_model_backend() -> None:
    from lightflow.engine.model import LightFlowModel
    assert LightFlowModel(width_mult=0.25).backend.name == 'torch'
    assert LightFlowModel(width_mult=0.25, backend='auto').backend.name == 'auto'
    with pytest.raises(ValueError, match="backend must be one of .* got 'trt'"):
        LightFlowModel(width_mult=0.25, backend='trt')
    with pytest.raises(ValueError, match=r"unknown .* \['inference_backend'\]"):  # issue 22: the earlier name is gone
        LightFlowModel(width_mult=0.25, inference_backend='auto')


def test_earlier_names_are_gone() -> None:
    """Issue 22, one name per idea: ``lightflow.runtime`` / ``lightflow.export`` (module swaps), ``BACKENDS`` and
    ``mmdet_plugin.synthetic_vid`` are removed; the README's "Renamed and removed names" lists where each went."""
    import importlib
    import importlib.util

    import lightflow
    import lightflow.inference.backends as backends
    for name in ('lightflow.runtime', 'lightflow.export'):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
    assert not hasattr(backends, 'BACKENDS')
    assert lightflow.FlowGraph is FlowGraph and lightflow.FlowEstimator is backends.FlowEstimator
    assert importlib.util.find_spec('mmdet_plugin.synthetic_vid') is None


def test_backend_name_resolved_once_into_an_object(monkeypatch) -> None:
    """Issue 22: the name is resolved once into a Backend (kind, devices, dtypes) that the path passes down; a call
    given the object never checks the name again, and a GPU-only or non-ONNX backend says what it runs."""
    import lightflow.inference.backends as backends
    from lightflow.inference import AUTO, resolve_backend
    ort = resolve_backend('onnxruntime')
    assert (ort.kind, ort.devices, ort.dtypes) == ('onnx', ('cpu',), (torch.float32,))
    assert resolve_backend('torch').kind == 'module' and resolve_backend('torch').runs(torch.device('cuda'), torch.half)
    assert resolve_backend('auto') is AUTO and resolve_backend(ort) is ort and str(ort) == 'onnxruntime'
    gpu = backends.Backend('gpu_only', session=lambda data, threads: None, devices=('cuda',))
    assert gpu.kind == 'onnx' and not gpu.runs(torch.device('cpu'), torch.float32)
    with pytest.raises(ValueError, match=r"^backend 'gpu_only' runs fp32 models on the CUDA; this model is "):
        gpu.refuse(torch.device('cpu'), torch.float32)
    model = lightflow_w0_5().eval()
    calls = []
    real = backends.require_backend
    monkeypatch.setattr(backends, 'require_backend', lambda name: calls.append(name) or real(name))
    torch_backend = resolve_backend('torch')
    assert calls == ['torch']
    img = torch.rand(3, 64, 64) * 255
    with torch.inference_mode():
        for _ in range(3):
            estimate_flow(model, img, img, backend=torch_backend)
    assert calls == ['torch']  # no name check per call
    assert flow_estimator(model, torch_backend).backend is torch_backend
