"""Issue 15/16, flow side: the fast path never returns an older model's flow, `auto` frees the runtimes it did not
pick, and the flow surfaces (image dtypes, export_flow, shipped names, ONNX read-back, FlowEstimator, best
checkpoint, KITTI writer, demo_flow --out) refuse what they cannot do right, in one line."""
from __future__ import annotations

import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lightflow.inference.backends as runtime
from lightflow import FlowEstimator, estimate_flow, flow_estimator, lightflow_w0_5
from lightflow.inference.onnx import check_onnx_matches, export_onnx
from lightflow.io import read_kitti_flow, write_kitti_flow
from lightflow.pretrained import WEIGHTS_DIR, resolve_weights, save_pretrained

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = [b for b in runtime.available_backends() if b != 'torch']


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = lightflow_w0_5().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial BN statistics, so that running_mean edits matter
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
    return model


def _pair(h: int = 64, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, h, w, generator=g) * 255, torch.rand(1, 3, h, w, generator=g) * 255


def _eager(model: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():  # grad mode on: the plain network, no cache
        return estimate_flow(model, a, b).detach()


def _bias(model: nn.Module) -> torch.Tensor:
    return model.predictors[-1][-1].bias


def _sgd_step(model: nn.Module) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    a, b = _pair()
    with torch.enable_grad():  # eval mode with gradients: the differentiable network
        estimate_flow(model, a, b).mean().backward()
    opt.step()


def _numpy_write(model: nn.Module) -> None:
    _bias(model).detach().numpy()[:] += 2.0


# Every public route by which weights change in place (issue 15 "stale flow", issue 16 #4).
ROUTES = {
    'load_state_dict': lambda m: m.load_state_dict(_model(7).state_dict()),
    'optimizer_step': _sgd_step,
    'data_mul': lambda m: [p.data.mul_(2) for p in m.predictors.parameters()],
    'ema_data_copy': lambda m: [p.data.copy_(q.data) for p, q in zip(m.parameters(), _model(7).parameters())],
    'numpy_write': _numpy_write,
    'bn_running_mean': lambda m: [b.running_mean.data.add_(0.5) for b in m.modules() if isinstance(b, nn.BatchNorm2d)],
    'div_flow': lambda m: setattr(m, 'div_flow', 10.0),
}


@pytest.mark.parametrize('backend', ['torch', *RUNTIMES[:1]])
@pytest.mark.parametrize('route', sorted(ROUTES))
def test_weight_change_reaches_the_next_call(route: str, backend: str) -> None:
    model = _model()
    a, b = _pair()
    with torch.inference_mode():
        before = estimate_flow(model, a, b, backend=backend)
    ROUTES[route](model)
    with torch.inference_mode():
        after = estimate_flow(model, a, b, backend=backend)
    expected = _eager(model, a, b)
    assert (expected - before).abs().max() > 0.05, 'the route did not change the flow; the test proves nothing'
    torch.testing.assert_close(after, expected, atol=1e-3, rtol=0)


def test_no_global_module_hooks_installed() -> None:
    import torch.nn.modules.module as mod
    for hooks in (mod._global_parameter_registration_hooks, mod._global_buffer_registration_hooks,
                  mod._global_module_registration_hooks):
        assert not any(getattr(h, '__module__', '').startswith('lightflow') for h in hooks.values())


@pytest.mark.skipif(not RUNTIMES, reason='no ONNX runtime installed')
def test_auto_frees_the_runtimes_it_did_not_pick(monkeypatch) -> None:
    sessions: list[tuple[str, weakref.ref]] = []
    for name in RUNTIMES:
        entry = runtime._REGISTRY[name]

        def build(data, threads, _entry=entry):
            session = _entry.session(data, threads)
            sessions.append((_entry.name, weakref.ref(session)))
            return session
        monkeypatch.setitem(runtime._REGISTRY, name, runtime.Backend(name, entry.package, build))
    est = FlowEstimator(_model(), 'auto')
    a, b = _pair()
    est(a, b)
    picked = est.selected[(1, 3, 64, 64)]
    assert sorted(n for n, _ in sessions) == sorted(RUNTIMES)
    alive = [n for n, ref in sessions if ref() is not None]
    assert alive == ([picked] if picked != 'torch' else [])


@pytest.mark.parametrize(('kwargs', 'match'), [
    (dict(tolerance=-1), 'tolerance must be a finite number >= 0'), (dict(tolerance=float('nan')), 'tolerance'),
    (dict(max_shapes=0), 'max_shapes must be an int >= 1'), (dict(max_shapes=-1), 'max_shapes')])
def test_estimator_arguments_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FlowEstimator(_model(), 'auto', **kwargs)


def test_estimator_refuses_nan_weights() -> None:
    model = _model()
    with torch.no_grad():
        _bias(model)[0] = float('nan')
    with pytest.raises(ValueError, match='NaN/inf values in .*refusing'):
        FlowEstimator(model, 'auto')(*_pair())


@pytest.mark.parametrize(('img1', 'img2', 'match'), [
    (torch.full((1, 3, 64, 64), float('nan')), torch.zeros(1, 3, 64, 64), 'img1: 12288 NaN/inf'),
    (torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64), r'img1: expected RGB \(N, 3, H, W\), got \(1, 1, 64, 64\)'),
])
def test_estimator_refuses_bad_frames(img1, img2, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FlowEstimator(_model(), 'torch')(img1, img2)


def test_slow_first_compile_prints_a_notice(monkeypatch, capfd) -> None:
    est = FlowEstimator(_model(), 'torch')
    select = est._select
    monkeypatch.setattr(runtime, 'COMPILE_NOTICE_S', 0.05)
    monkeypatch.setattr(est, '_select', lambda *args: (time.sleep(0.5), select(*args))[1])
    est(*_pair())
    err = capfd.readouterr().err
    assert err.count('\n') == 1 and 'compiling the flow graph for input (1, 3, 64, 64)' in err
    est(*_pair())
    assert capfd.readouterr().err == ''


def test_image_dtypes() -> None:
    model = _model()
    rng = np.random.default_rng(0)
    u16 = [rng.integers(0, 65536, (64, 64, 3), dtype=np.uint16) for _ in range(2)]
    u8 = [(x >> 8).astype(np.uint8) for x in u16]
    with torch.inference_mode():
        ref = estimate_flow(model, *u8, backend='torch')
        torch.testing.assert_close(estimate_flow(model, *u16, backend='torch'), ref)
        torch.testing.assert_close(estimate_flow(model, *(x.astype(np.float32) for x in u8), backend='torch'), ref)
        for bad, match in [((u8[0] / 255.0, u8[1] / 255.0), r'img1: float64 image with values in 0\.\.1 looks like '
                                                             r'0\.\.1; multiply by 255'),
                           ((u8[0].astype(np.int8), u8[1]), 'img1: unsupported image dtype int8'),
                           ((torch.zeros(3, 64, 64), torch.rand(3, 64, 64)), 'img2: torch.float32 image .* 0..1'),
                           ((torch.zeros(3, 64, 64, dtype=torch.int8),) * 2, 'img1: unsupported image dtype')]:
            with pytest.raises(ValueError, match=match):
                estimate_flow(model, *bad, backend='torch')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('ckpt') / 'w05.pth'
    save_pretrained(_model(), path)
    return path


def test_export_flow_refuses_bad_out_and_sizes(load_tool, checkpoint, tmp_path, monkeypatch) -> None:
    main = load_tool('export_flow').main
    with pytest.raises(ValueError, match='--out .*newdir/: is a folder'):
        main([str(checkpoint), '--out', f'{tmp_path}/newdir/'])
    assert not (tmp_path / 'newdir').exists()
    notes = tmp_path / 'notes.txt'
    notes.write_text('keep me')
    with pytest.raises(ValueError, match='notes.txt: exists and is not a .onnx file; use --force'):
        main([str(checkpoint), '--out', str(notes), '--height', '64', '--width', '64'])
    assert notes.read_text() == 'keep me'
    main([str(checkpoint), '--out', str(notes), '--height', '64', '--width', '64', '--force'])
    assert notes.read_bytes()[:2] != b'ke'
    import lightflow.inference.onnx
    monkeypatch.setattr(lightflow.inference.onnx, '_available_memory', lambda: 8 * 2 ** 30)
    with pytest.raises(ValueError, match=r'height/width 10000x10000 .*needs about \d+\.\d GB of memory, only 8\.6 GB'):
        main([str(checkpoint), '--out', str(tmp_path / 'big.onnx'), '--height', '10000', '--width', '10000'])


def test_export_flow_refuses_nan_weights_and_nan_check(load_tool, checkpoint, tmp_path, monkeypatch) -> None:
    main = load_tool('export_flow').main
    model = _model()
    with torch.no_grad():
        _bias(model)[0] = float('nan')
    bad = tmp_path / 'nan.pth'
    save_pretrained(model, bad)
    with pytest.raises(ValueError, match=r'1 NaN/inf values in predictors\.4\.\d+\.bias'):
        main([str(bad), '--out', str(tmp_path / 'nan.onnx'), '--height', '64', '--width', '64'])
    assert not (tmp_path / 'nan.onnx').exists()
    if not RUNTIMES:
        return

    class NanSession:
        def run(self, feeds):
            return [np.full((1, 2, 64, 64), np.nan, np.float32)]
    monkeypatch.setattr(runtime, 'onnx_session', lambda *args: NanSession())
    with pytest.raises(ValueError, match='--check: .* differs from PyTorch by nan px'):
        main([str(checkpoint), '--out', str(tmp_path / 'ok.onnx'), '--height', '64', '--width', '64', '--check'])


def test_shipped_name_is_never_shadowed(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path('lightflow_w0.5_synthetic').write_bytes(b'not the shipped weights')
    assert resolve_weights('lightflow_w0.5_synthetic') == WEIGHTS_DIR / 'lightflow_w0.5_synthetic.pth'
    assert resolve_weights('./lightflow_w0.5_synthetic') == Path('./lightflow_w0.5_synthetic')


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> Path:
    return export_onnx(_model(), tmp_path_factory.mktemp('onnx') / 'w05.onnx', 64, 64)


def test_onnx_read_back(exported, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper
    empty = tmp_path / 'empty.onnx'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.onnx: empty file'):
        check_onnx_matches(empty, _model())

    proto = onnx.load(str(exported))
    for p in proto.metadata_props:
        if p.key == 'lightflow.width_mult':
            p.value = 'half'
    bad_width = tmp_path / 'bad_width.onnx'
    bad_width.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="bad_width.onnx: bad lightflow.width_mult metadata 'half'"):
        check_onnx_matches(bad_width, _model())

    proto = onnx.load(str(exported))
    init = proto.graph.initializer[0]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 1.0, init.name))
    onnx.checker.check_model(proto)
    edited = tmp_path / 'edited.onnx'
    edited.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match='edited.onnx: its weights differ from the ones exported'):
        check_onnx_matches(edited, _model())
    assert check_onnx_matches(exported, _model())['lightflow.width_mult'] == '0.5'


def test_kitti_writer_marks_flows_it_cannot_store_invalid(tmp_path) -> None:
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 0] = (600.0, 0.0)
    flow[0, 1] = (0.0, -512.0)
    flow[0, 2] = (511.5, -511.5)
    write_kitti_flow(tmp_path / 'f.png', flow)
    back, valid = read_kitti_flow(tmp_path / 'f.png')
    assert valid.tolist() == [[False, False, True], [True, True, True]]
    np.testing.assert_allclose(back[0, 2], (511.5, -511.5))


def test_new_best_written_before_the_old_best_is_deleted(tmp_path) -> None:
    from mmengine.fileio import get_file_backend
    from mmengine.logging import MessageHub

    from lightflow.engine.checkpoint_hook import AtomicCheckpointHook

    class Runner:
        epoch, iter = 0, 1
        message_hub = MessageHub.get_instance(f'trust_flow_{time.time_ns()}')
        logger = type('Logger', (), {'info': staticmethod(lambda msg: None)})()
        fail = False

        def save_checkpoint(self, out_dir, filename, **kwargs):
            if self.fail:
                raise RuntimeError('power cut')
            Path(out_dir, filename).write_bytes(b'ckpt')

    hook = AtomicCheckpointHook(interval=1, by_epoch=False, save_best='EPE', rule='less')
    hook.out_dir, hook.file_backend, hook.last_ckpt = str(tmp_path), get_file_backend(str(tmp_path)), None
    runner = Runner()
    hook._save_best_checkpoint(runner, {'EPE': 2.0})
    runner.iter = 2
    hook._save_best_checkpoint(runner, {'EPE': 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ['best_EPE_iter_2.pth']
    runner.iter, runner.fail = 3, True
    with pytest.raises(RuntimeError, match='power cut'):  # the crash leaves the previous best in place
        hook._save_best_checkpoint(runner, {'EPE': 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ['best_EPE_iter_2.pth']


def test_demo_flow_refuses_to_replace_existing_outputs(load_tool, checkpoint, tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for name in ('a.png', 'b.png'):
        frames.append(tmp_path / name)
        import imageio.v3 as iio
        iio.imwrite(frames[-1], rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.flo').write_bytes(b'someone else\'s file')
    main = load_tool('demo_flow').main
    args = [str(checkpoint), *map(str, frames), '--out', str(out), '--device', 'cpu']
    with pytest.raises(ValueError, match='--out .*out: already holds a.flo, which this run would replace; use --force'):
        main(args)
    assert (out / 'a.flo').read_bytes() == b'someone else\'s file' and not (out / 'a.png').exists()
    assert main([*args, '--force']) == [out / 'a.flo']
    assert (out / 'a.flo').read_bytes()[:4] == b'PIEH'


def test_fcos_nonkey_step_exports_and_matches_detector_path() -> None:
    pytest.importorskip('mmdet')
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_plugin  # noqa: F401  (registers the plugin)
    from mmdet_plugin.export import NonKeyStep, nonkey_inputs, onnx_nonkey_bytes

    cfg = Config.fromfile(str(REPO / 'configs' / 'vid' / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py'))
    head = cfg.model.detector.bbox_head
    cfg.model.detector.bbox_head = dict(type='FCOSHead', num_classes=head.num_classes, in_channels=head.in_channels,
                                        feat_channels=head.feat_channels, stacked_convs=0, strides=[8, 16])
    cfg.model.detector.train_cfg = None
    init_default_scope('mmdet')
    torch.manual_seed(0)
    det = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        det.motion.flownet.predictors[-1][-1].bias.copy_(torch.tensor([6.0, -3.0]))
    g = torch.Generator().manual_seed(1)
    key, img = (torch.randn(1, 3, 64, 96, generator=g) for _ in range(2))
    inputs = nonkey_inputs(det, key, img)
    with torch.no_grad():
        out = NonKeyStep(det).eval()(*inputs)
        groups = det.detector.bbox_head(tuple(det.warp(inputs[:-2], det.motion(img, key))))
    expected = [t for group in groups for t in group]
    assert len(groups) == 3 and len(out) == len(expected) == 6
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    import onnx
    proto = onnx.load_from_string(onnx_nonkey_bytes(det, 64, 96))
    assert [o.name for o in proto.graph.output] == ['cls_score0', 'cls_score1', 'bbox_pred0', 'bbox_pred1',
                                                   'centerness0', 'centerness1']
    if RUNTIMES and 'onnxruntime' in RUNTIMES:
        feeds = {i.name: x.numpy() for i, x in zip(proto.graph.input, inputs)}
        got = runtime.onnx_session('onnxruntime', proto.SerializeToString(), 1).run(feeds)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-3, rtol=1e-3)
