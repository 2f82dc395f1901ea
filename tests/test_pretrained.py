"""Shipped pretrained weights: export -> registry -> load round trips exactly, the registry's sha256 guards the files,
every bad input is a one-line error, loading runs no pickled code, and names work wherever a checkpoint path does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lightflow
from lightflow import LightFlow, estimate_flow, read_flo, read_image
from lightflow import pretrained as pretrained_mod
from lightflow.checkpoint import lightflow_config, load_lightflow_checkpoint, load_lightflow_weights
from lightflow.pretrained import (PRETRAINED, WEIGHTS_DIR, file_sha256, list_pretrained, load_flow_source,
                                  load_pretrained, resolve_weights, save_pretrained)

REPO = Path(__file__).resolve().parents[1]
SYNTH_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb8-2k_synthetic.py'


def _net(width: float = 0.5, seed: int = 0, **kw) -> LightFlow:
    """A LightFlow with random weights *and* random BN statistics, so eval outputs depend on every saved tensor."""
    torch.manual_seed(seed)
    net = LightFlow(width, **kw)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.num_batches_tracked.fill_(7)
    return net.eval()


def _train_style_checkpoint(net: LightFlow, path: Path, meta: dict | None = None) -> Path:
    """What tools/train_flow.py writes: wrapper prefix, meta with width/div_flow only, optimizer state."""
    state = {f'flownet.{k}': v for k, v in net.state_dict().items()}
    meta = {'lightflow': dict(width_mult=net.width_mult, div_flow=net.div_flow)} if meta is None else meta
    torch.save({'meta': meta, 'state_dict': state, 'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-3}]}}, path)
    return path


def _outputs(net: LightFlow, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img1, img2 = (torch.rand(1, 3, 64, 128, generator=g) * 255 for _ in range(2))
    with torch.no_grad():
        return net(img1, img2)


def _assert_same_outputs(a: LightFlow, b: LightFlow) -> None:
    """Two instances with the same weights give the same flow up to the CPU kernels' rounding (bit equality of two
    instances failed once under load); other weights are off by far more."""
    torch.testing.assert_close(_outputs(a), _outputs(b), rtol=1e-5, atol=1e-6)


def _register(monkeypatch, tmp_path: Path, **entries: dict) -> None:
    """Point the registry at files in tmp_path: ``name=dict(file=..., sha256=..., ...)`` per entry."""
    monkeypatch.setattr(pretrained_mod, 'WEIGHTS_DIR', tmp_path)
    monkeypatch.setattr(pretrained_mod, 'PRETRAINED', dict(entries))


def _registered_copy(monkeypatch, tmp_path: Path, net: LightFlow, name: str = 'tiny_w0.5') -> Path:
    path = tmp_path / f'{name}.pth'
    sha = save_pretrained(net, path)
    _register(monkeypatch, tmp_path, **{name: dict(file=path.name, sha256=sha, config=lightflow_config(net),
                                                   summary='test weights')})
    return path


# ---------------------------------------------------------------- export and round trip

def test_export_tool_round_trip_gives_identical_outputs(load_tool, tmp_path, monkeypatch, capsys):
    net = _net(0.5)
    ckpt = _train_style_checkpoint(net, tmp_path / 'iter_100.pth')
    out = tmp_path / 'weights' / 'lightflow_w0.5_test.pth'
    sha = load_tool('export_pretrained').main([str(ckpt), str(out), '--summary', 'unit test'])
    printed = capsys.readouterr().out
    assert sha == file_sha256(out) and f'sha256 {sha}' in printed

    # The slim format: weights and the full config only.
    raw = torch.load(out, weights_only=True)
    assert set(raw) == {'state_dict', 'meta'} and set(raw['meta']) == {'lightflow'}
    assert raw['meta']['lightflow'] == dict(width_mult=0.5, encoder_channels=(32, 64, 128, 256, 256, 512, 512, 1024,
                                                                               1024),
                                            encoder_strides=(2, 2, 2, 2, 1, 2, 1, 2, 1),
                                            decoder_channels=(256, 128, 64, 32, 16), div_flow=20.0,
                                            negative_slope=0.1, pred_upsample='nearest')
    assert all(v.dtype == torch.float32 for v in raw['state_dict'].values() if v.is_floating_point())

    # The printed registry line is a one-line dict entry that load_pretrained accepts as is.
    line = next(s for s in printed.splitlines() if s.strip().startswith("'lightflow_w0.5_test'"))
    entry = eval('{' + line.strip().rstrip(',') + '}')  # noqa: S307  (our own tool's output)
    _register(monkeypatch, out.parent, **entry)
    assert list_pretrained() == ['lightflow_w0.5_test']
    loaded = load_pretrained('lightflow_w0.5_test')
    assert not loaded.training and loaded.width_mult == 0.5
    _assert_same_outputs(loaded, net)
    _assert_same_outputs(lightflow.load_pretrained('lightflow_w0.5_test'), net)
    assert resolve_weights('lightflow_w0.5_test') == out


def test_export_is_deterministic_and_atomic(tmp_path):
    net = _net(0.5)
    a, b = save_pretrained(net, tmp_path / 'a.pth'), save_pretrained(net, tmp_path / 'other_name.pth')
    assert a == b  # same weights, same bytes whatever the file is called
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.pth', 'other_name.pth']  # no temp files left
    assert save_pretrained(_net(0.5, seed=1), tmp_path / 'a.pth') != a


def test_width_0_6_and_custom_decoder_round_trip_through_meta(load_tool, tmp_path):
    # int(32 * 0.6) = 19: conv1 alone would read 0.59375, whose deeper layers differ (int(256 * 0.59375) = 152 != 153).
    net = _net(0.6)
    raw = tmp_path / 'raw.pth'
    torch.save(net.state_dict(), raw)  # no meta: the width is inferred from the shapes
    assert load_lightflow_checkpoint(raw).width_mult == 0.6
    out = tmp_path / 'w06.pth'
    load_tool('export_pretrained').main([str(raw), str(out)])
    loaded = load_lightflow_checkpoint(out)
    assert loaded.width_mult == 0.6 and lightflow_config(loaded) == lightflow_config(net)
    _assert_same_outputs(loaded, net)

    # An architecture the weights' shapes alone cannot describe (decoder widths, LeakyReLU slope, how the predictions
    # are upsampled) lives in the meta.
    custom = _net(1.0, decoder_channels=(96, 64, 48, 32, 8), negative_slope=0.2, div_flow=10.0,
                  pred_upsample='bilinear')
    save_pretrained(custom, tmp_path / 'custom.pth')
    loaded = load_lightflow_checkpoint(tmp_path / 'custom.pth')
    assert lightflow_config(loaded) == dict(width_mult=1.0, encoder_channels=(32, 64, 128, 256, 256, 512, 512, 1024,
                                                                               1024),
                                            encoder_strides=(2, 2, 2, 2, 1, 2, 1, 2, 1),
                                            decoder_channels=(96, 64, 48, 32, 8), div_flow=10.0, negative_slope=0.2,
                                            pred_upsample='bilinear')
    _assert_same_outputs(loaded, custom)
    # Same seed, same weights, nearest: a loader that dropped the flag would give these outputs instead.
    nearest = _net(1.0, decoder_channels=(96, 64, 48, 32, 8), negative_slope=0.2, div_flow=10.0)
    assert (_outputs(nearest) - _outputs(custom)).abs().max() > 1e-4


def test_export_tool_one_line_errors(load_tool, tmp_path):
    (tmp_path / 'empty.pth').write_bytes(b'')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'export_pretrained.py'), str(tmp_path / 'empty.pth'),
                           str(tmp_path / 'out.pth')], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f'error: {tmp_path / "empty.pth"}: cannot load checkpoint (empty '
                                                'file, 0 bytes)']
    assert not (tmp_path / 'out.pth').exists()
    export = load_tool('export_pretrained')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        export.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth')])
    torch.save({'state_dict': {'foo': torch.zeros(1)}}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='other.pth: no Light Flow weights'):
        export.main([str(tmp_path / 'other.pth'), str(tmp_path / 'out.pth')])
    with pytest.raises(ValueError, match='letters, digits'):
        export.main([str(tmp_path / 'other.pth'), str(tmp_path / 'out.pth'), '--name', 'a b'])
    assert not (tmp_path / 'out.pth').exists()


# ---------------------------------------------------------------- registry checks

def test_sha256_mismatch_is_refused(tmp_path, monkeypatch):
    path = _registered_copy(monkeypatch, tmp_path, _net(0.5))
    registry = pretrained_mod.PRETRAINED
    registry['tiny_w0.5']['sha256'] = '0' * 64
    for call in (lambda: load_pretrained('tiny_w0.5'), lambda: resolve_weights('tiny_w0.5')):
        with pytest.raises(ValueError, match=r'tiny_w0\.5\.pth: sha256 [0-9a-f]{64} does not match 0{64}') as e:
            call()
        assert '\n' not in str(e.value)
    # A modified file with the right registry entry is caught the same way.
    registry['tiny_w0.5']['sha256'] = file_sha256(path)
    with open(path, 'r+b') as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(ValueError, match='sha256'):
        load_pretrained('tiny_w0.5')


def test_unknown_name_lists_known_names(tmp_path, monkeypatch):
    _register(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="unknown pretrained Light Flow 'nope' .none are shipped"):
        load_pretrained('nope')
    path = _registered_copy(monkeypatch, tmp_path, _net(0.5), name='b_w0.5')
    pretrained_mod.PRETRAINED['a_w1.0'] = dict(file='a.pth', sha256='0' * 64)
    assert list_pretrained() == ['a_w1.0', 'b_w0.5']
    with pytest.raises(ValueError, match=r"unknown pretrained Light Flow 'lightflow_w9' \(known: a_w1\.0, b_w0\.5\)"):
        load_pretrained('lightflow_w9')
    with pytest.raises(FileNotFoundError, match=r'nope\.pth: no such checkpoint file, nor a pretrained Light Flow '
                                                r'name \(known: a_w1\.0, b_w0\.5\)'):
        resolve_weights('nope.pth')
    with pytest.raises(FileNotFoundError, match='a.pth: weights of pretrained .a_w1.0. are missing'):
        load_pretrained('a_w1.0')
    assert resolve_weights(str(path)) == path  # an existing file is taken as a path


def test_registered_config_must_match_the_file(tmp_path, monkeypatch):
    _registered_copy(monkeypatch, tmp_path, _net(0.5))
    pretrained_mod.PRETRAINED['tiny_w0.5']['config'] = dict(lightflow_config(_net(0.5)), div_flow=10.0)
    with pytest.raises(ValueError, match="but pretrained 'tiny_w0.5' is registered as"):
        load_pretrained('tiny_w0.5')


# ---------------------------------------------------------------- bad files

@pytest.mark.parametrize('kind', ['empty', 'truncated', 'text'])
def test_bad_files_are_one_line_value_errors(tmp_path, monkeypatch, kind):
    good = tmp_path / 'good.pth'
    save_pretrained(_net(0.5), good)
    bad = tmp_path / f'{kind}.pth'
    data = {'empty': b'', 'truncated': good.read_bytes()[:good.stat().st_size // 2], 'text': b'not a checkpoint\n'}
    bad.write_bytes(data[kind])
    calls = [lambda: load_lightflow_checkpoint(bad), lambda: load_lightflow_weights(LightFlow(0.5), bad)]
    _register(monkeypatch, tmp_path, **{kind: dict(file=bad.name, sha256=file_sha256(bad))})  # sha256 passes
    calls.append(lambda: load_pretrained(kind))
    for call in calls:
        with pytest.raises(ValueError, match=rf'{kind}\.pth: cannot load checkpoint') as e:
            call()
        assert '\n' not in str(e.value), str(e.value)
    if kind == 'empty':
        assert 'empty file, 0 bytes' in str(e.value)


def _write_marker(path: str) -> None:
    Path(path).write_text('code ran')


class _Payload:
    """Unpickling this calls _write_marker: what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return _write_marker, (self.marker,)


def test_pickled_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / 'marker.txt'
    evil = tmp_path / 'evil.pth'
    state = {f'flownet.{k}': v for k, v in LightFlow(0.5).state_dict().items()}
    torch.save({'state_dict': state, 'meta': {'lightflow': _Payload(marker)}}, evil)
    assert not marker.exists()
    _register(monkeypatch, tmp_path, evil=dict(file=evil.name, sha256=file_sha256(evil)))
    for call in (lambda: load_lightflow_checkpoint(evil), lambda: load_lightflow_weights(LightFlow(0.5), evil),
                 lambda: load_pretrained('evil')):
        with pytest.raises(ValueError, match=r'evil\.pth: cannot load checkpoint \(UnpicklingError: .*_write_marker'):
            call()
    assert not marker.exists()
    # The payload is real: unrestricted unpickling would have run it.
    torch.load(evil, weights_only=False)
    assert marker.read_text() == 'code ran'


# ---------------------------------------------------------------- widths and names wherever a path is accepted

def test_wrong_width_names_both_widths(tmp_path, monkeypatch):
    path = _registered_copy(monkeypatch, tmp_path, _net(0.5))
    for source in (path, resolve_weights('tiny_w0.5')):
        with pytest.raises(ValueError, match=r'holds a Light Flow of width_mult=0\.5 .*model has width_mult=0\.75'):
            load_lightflow_weights(LightFlow(0.75), source)
    raw = tmp_path / 'raw06.pth'
    torch.save(LightFlow(0.6).state_dict(), raw)
    with pytest.raises(ValueError, match=r'width_mult=0\.6 \(conv1 has 19 channels\), but the model has '
                                         r'width_mult=0\.5'):
        load_lightflow_weights(LightFlow(0.5), raw)
    target = LightFlow(0.5)
    load_lightflow_weights(target, resolve_weights('tiny_w0.5'))
    _assert_same_outputs(target.eval(), _net(0.5))


def test_motion_and_lightflow_model_accept_names(tmp_path, monkeypatch):
    motion_mod = pytest.importorskip('mmdet_plugin.models')
    from lightflow.engine import LightFlowModel

    _registered_copy(monkeypatch, tmp_path, _net(0.5))
    motion = motion_mod.LightFlowMotion(width_mult=0.5, pretrained='tiny_w0.5')
    motion.init_weights()
    _assert_same_outputs(motion.flownet.eval(), _net(0.5))
    with pytest.raises(ValueError, match=r'width_mult=0\.5 .*model has width_mult=1'):
        motion_mod.LightFlowMotion(width_mult=1.0, pretrained='tiny_w0.5').init_weights()
    with pytest.raises(FileNotFoundError, match=r'known: tiny_w0\.5'):
        motion_mod.LightFlowMotion(width_mult=0.5, pretrained='tiny_w9').init_weights()
    model = LightFlowModel(width_mult=0.5, pretrained='tiny_w0.5')
    _assert_same_outputs(model.flownet.eval(), _net(0.5))
    with pytest.raises(ValueError, match=r'width_mult=0\.5 .*model has width_mult=1'):
        LightFlowModel(width_mult=1.0, pretrained='tiny_w0.5')


def test_motion_runs_a_bilinear_checkpoint_as_trained_and_training_keeps_its_own_flag(tmp_path):
    """LightFlowMotion only runs the weights: it takes the checkpoint's pred_upsample / div_flow (a nearest model
    running bilinear-trained weights gives other flow, silently). A training model keeps the flag of its config, so
    nearest weights can be fine-tuned into the bilinear variant."""
    motion_mod = pytest.importorskip('mmdet_plugin.models')
    from lightflow.engine import LightFlowModel

    trained = _net(0.5, pred_upsample='bilinear', div_flow=10.0)
    save_pretrained(trained, tmp_path / 'bilinear.pth')
    motion = motion_mod.LightFlowMotion(width_mult=0.5, pretrained=str(tmp_path / 'bilinear.pth'))
    motion.init_weights()
    assert (motion.flownet.config.pred_upsample, motion.flownet.div_flow) == ('bilinear', 10.0)
    _assert_same_outputs(motion.flownet.eval(), trained)
    model = LightFlowModel(width_mult=0.5, pretrained=str(tmp_path / 'bilinear.pth'))
    assert (model.flownet.config.pred_upsample, model.flownet.div_flow) == ('nearest', 20.0)


def test_tools_accept_names(load_tool, tmp_path, monkeypatch):
    _registered_copy(monkeypatch, tmp_path, _net(0.5))
    model = load_flow_source('tiny_w0.5', 0.5, 'cpu')  # tools/demo_flow.py's loader
    _assert_same_outputs(model, _net(0.5))
    with pytest.raises(ValueError, match=r'width_mult=0\.5, but width 1 was asked'):
        load_flow_source('tiny_w0.5', 1.0, 'cpu')
    with pytest.raises(FileNotFoundError, match=r'tiny_w9: no such checkpoint file, nor a pretrained .*tiny_w0\.5'):
        load_flow_source('tiny_w9', None, 'cpu')
    cfg = tmp_path / 'named.py'
    cfg.write_text(f"_base_ = {str(SYNTH_CFG)!r}\nmodel = dict(pretrained='tiny_w0.5')\n")
    _assert_same_outputs(load_flow_source(str(cfg), None, 'cpu'), _net(0.5))
    with pytest.raises(ValueError, match=r'--width 1 disagrees with .*named\.py \(model\.width_mult=0\.5\)'):
        load_flow_source(str(cfg), 1.0, 'cpu')

    tiny = ['test_dataloader.dataset.dataset.size=(64,64)', 'test_dataloader.dataset.dataset.num_samples=2',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    metrics = load_tool('test_flow').main([str(SYNTH_CFG), 'tiny_w0.5', '--work-dir', str(tmp_path / 'work'),
                                       '--cfg-options', *tiny])
    assert metrics['EPE'] > 0 and metrics['EPE'] == metrics['EPE']  # finite, computed with the named weights
    with pytest.raises(FileNotFoundError, match='known: tiny_w0.5'):
        load_tool('test_flow').main([str(SYNTH_CFG), 'tiny_w9', '--work-dir', str(tmp_path / 'work')])


def test_pure_torch_loading_never_imports_mmengine(tmp_path):
    save_pretrained(_net(0.5), tmp_path / 'w.pth')
    code = ('import sys, lightflow\n'
            f'm = lightflow.load_lightflow_checkpoint({str(tmp_path / "w.pth")!r})\n'
            "assert m.width_mult == 0.5 and not m.training\n"
            "assert 'mmengine' not in sys.modules, 'mmengine was imported'\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- the shipped weights themselves

def test_shipped_registry_is_consistent():
    for name, entry in PRETRAINED.items():
        assert set(entry) >= {'file', 'sha256', 'config', 'summary'}, name
        assert len(entry['sha256']) == 64 and entry['file'].endswith('.pth'), name
    shipped = {p.name for p in WEIGHTS_DIR.glob('*.pth')}
    assert shipped == {entry['file'] for entry in PRETRAINED.values()}  # no unregistered files, no missing ones


def _chairs_epe(net: LightFlow | None, root: Path) -> float:
    """Per-pixel EPE over the mini Flying Chairs pairs; ``None`` -> the zero-flow baseline."""
    errors = []
    for img1_path in sorted((root / 'data').glob('*_img1.ppm')):
        stem = img1_path.name[:-len('_img1.ppm')]
        gt = torch.from_numpy(read_flo(root / 'data' / f'{stem}_flow.flo')).permute(2, 0, 1)
        if net is None:
            pred = torch.zeros_like(gt)
        else:
            with torch.inference_mode():
                pred = estimate_flow(net, read_image(img1_path), read_image(root / 'data' / f'{stem}_img2.ppm'))[0]
        errors.append((pred - gt).norm(dim=0).flatten())
    return float(torch.cat(errors).mean())


def _synthvid_warp_error(net) -> float:
    """Mean photometric error of frame t - 3 warped onto frame t (0..255) over synthetic VID videos of a seed no
    weights saw, the flow computed at 128x128 as the synthvid detectors compute it (None: zero flow)."""
    import torch.nn.functional as F

    from lightflow.data.synthetic.vid_render import render_frame
    from lightflow.data.synthetic.vid_scene import build_scenes
    from lightflow.evaluation import warp_error
    from lightflow.warp import resize_flow

    errors = []
    for scene in build_scenes(2, 1, num_frames=8, height=224, width=288, seed=123, blur_prob=0.0)['train']:
        for t in (3, 5, 7):
            cur, key = (torch.from_numpy(render_frame(scene, i)[0]).permute(2, 0, 1)[None].float() for i in (t, t - 3))
            flow = torch.zeros(1, 2, 224, 288)
            if net is not None:
                small = [F.interpolate(x, size=(128, 128), mode='bilinear', align_corners=False) for x in (cur, key)]
                with torch.inference_mode():
                    flow = resize_flow(estimate_flow(net, *small), (224, 288))
            errors.append(warp_error(cur[0], key[0], flow[0]))
    return sum(errors) / len(errors)


@pytest.mark.parametrize('name', list_pretrained())
def test_shipped_weights_load_and_beat_zero_flow(name, shared_data):
    entry = PRETRAINED[name]
    assert file_sha256(WEIGHTS_DIR / entry['file']) == entry['sha256']
    net = load_pretrained(name)
    assert not net.training and lightflow_config(net) == {k: tuple(v) if isinstance(v, list) else v
                                                          for k, v in entry['config'].items()}
    if name.endswith('_synthvid'):
        # Domain weights (adapted to the synthetic VID videos at the detectors' 128x128 flow size): checked there.
        err, zero = _synthvid_warp_error(net), _synthvid_warp_error(None)
        assert err < 0.9 * zero, f'{name}: warp error {err:.2f} does not beat zero flow {zero:.2f}'
        return
    root = shared_data / 'FlyingChairs_mini'
    epe, zero = _chairs_epe(net, root), _chairs_epe(None, root)
    assert epe < zero, f'{name}: EPE {epe:.3f} does not beat zero flow {zero:.3f}'
