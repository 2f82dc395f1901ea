"""export_onnx: a self-contained, validated ONNX flow graph that runtimes run to the eager network's numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lightflow import estimate_flow, export_onnx, lightflow_w0_5, lightflow_w0_75
from lightflow.inference.onnx import check_onnx_matches, read_onnx_metadata
from lightflow.inference.backends import available_backends

onnx = pytest.importorskip('onnx')


def _pair(h: int, w: int, n: int = 1):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, h, w, generator=g) * 255, torch.rand(n, 3, h, w, generator=g) * 255


def test_export_is_valid_and_self_describing(tmp_path):
    model = lightflow_w0_75().eval()
    path = export_onnx(model, tmp_path / 'lf.onnx', 97, 131)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.input] == ['img1', 'img2'] and [o.name for o in proto.graph.output] == ['flow']
    assert not any(n.op_type == 'BatchNormalization' for n in proto.graph.node)  # BN folded
    meta = read_onnx_metadata(path)
    assert meta['lightflow.width_mult'] == '0.75'
    assert (meta['lightflow.height'], meta['lightflow.width']) == ('97', '131')
    assert check_onnx_matches(path, model)['lightflow.div_flow'] == '20.0'
    assert not list(tmp_path.glob('.*.tmp'))  # written through a temp file


@pytest.mark.skipif('onnxruntime' not in available_backends(), reason='onnxruntime not installed')
def test_exported_file_matches_eager_with_dynamic_batch(tmp_path):
    import onnxruntime as ort
    model = lightflow_w0_5().eval()
    with torch.no_grad():
        model.predictors[-1][-1].bias.fill_(0.5)
    path = export_onnx(model, tmp_path / 'lf.onnx', 70, 90, dynamic=True)
    a, b = _pair(70, 90, n=3)
    with torch.enable_grad():
        expected = estimate_flow(model, a, b).detach().numpy()  # the plain differentiable network
    got = ort.InferenceSession(str(path), providers=['CPUExecutionProvider']).run(
        None, {'img1': a.numpy(), 'img2': b.numpy()})[0]
    assert got.shape == (3, 2, 70, 90) and np.abs(expected).max() > 1.0
    assert np.abs(got - expected).max() < 1e-3


def test_export_errors(tmp_path):
    model = lightflow_w0_5().eval()
    with pytest.raises(ValueError, match='height must be a positive int, got 0'):
        export_onnx(model, tmp_path / 'a.onnx', 0, 64)
    with pytest.raises(ValueError, match="width must be a positive int, got -5"):
        export_onnx(model, tmp_path / 'a.onnx', 64, -5)
    path = export_onnx(model, tmp_path / 'w05.onnx', 64, 64)
    with pytest.raises(ValueError, match=r'w05.onnx: exported for width_mult=0.5, but the model has width_mult=0.75'):
        check_onnx_matches(path, lightflow_w0_75())
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='junk.onnx: not an ONNX model'):
        read_onnx_metadata(tmp_path / 'junk.onnx')
    with pytest.raises(FileNotFoundError, match='missing.onnx: no such ONNX file'):
        read_onnx_metadata(tmp_path / 'missing.onnx')


def test_export_flow_tool(tmp_path, capsys):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
    import export_flow
    assert export_flow.main(['lightflow_w0.5_synthetic', '--out', str(tmp_path / 'm.onnx'), '--height', '96',
                             '--width', '128', '--check']) == 0
    out = capsys.readouterr().out
    assert read_onnx_metadata(tmp_path / 'm.onnx')['lightflow.height'] == '96'
    for backend in available_backends():
        if backend != 'torch':
            line = next(ln for ln in out.splitlines() if ln.startswith(backend))
            assert float(line.split('=')[1].split()[0]) < 1e-3
    with pytest.raises(ValueError, match='--out .*: is a folder'):
        export_flow.main(['lightflow_w0.5_synthetic', '--out', str(tmp_path)])


def test_one_exporter_for_any_module():
    """module_onnx_bytes (the flow graph's and the non-key step's exporter): weights sha256 stored, bad input
    refused."""
    from lightflow.inference.onnx import initializers_sha256, module_onnx_bytes
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
    example = (torch.rand(1, 3, 8, 8),)
    proto = onnx.load_from_string(module_onnx_bytes(conv, example, ['x'], ['y'], metadata={'k': 'v'}, check=True))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta == {'k': 'v', 'lightflow.weights_sha256': initializers_sha256(proto)}
    assert [i.name for i in proto.graph.input] == ['x'] and [o.name for o in proto.graph.output] == ['y']
    with pytest.raises(ValueError, match='opset must be >= 17, got 16'):
        module_onnx_bytes(conv, example, ['x'], ['y'], opset=16)
    with torch.no_grad():
        conv.bias[1] = float('inf')
    with pytest.raises(ValueError, match=r'the conv has 1 NaN/inf values in bias'):
        module_onnx_bytes(conv, example, ['x'], ['y'], what='the conv')
