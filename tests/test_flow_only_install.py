"""The pure-torch core stands on its own: without mmengine / mmcv / mmdet, lightflow imports and tools/demo_flow.py runs
the shipped weights; and every third-party module that lightflow (outside lightflow.engine) imports is declared in
setup.py, in install_requires when it is imported at import time."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter where the OpenMMLab packages cannot be imported, as after `pip install lightflow`.
_FLOW_ONLY = r'''
import sys

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmengine', 'mmcv', 'mmdet'):
            raise ImportError(f'{name}: blocked (flow-only install)')
        return None

sys.meta_path.insert(0, _Blocker())
import imageio.v3 as iio
import lightflow, lightflow.checkpoint, lightflow.data, lightflow.inference, lightflow.losses, lightflow.io
import lightflow.evaluation, lightflow.metrics, lightflow.pretrained, lightflow.viz, lightflow.warp
import lightflow.frames, lightflow.baseline_flow, lightflow.data.video_pairs

out = sys.argv[1]
img1, img2, _, _ = lightflow.data.SyntheticChairs(1, size=(64, 96), seed=5).read_raw(0)
iio.imwrite(f'{out}/a.png', img1)
iio.imwrite(f'{out}/b.png', img2)
sys.path.insert(0, 'tools')
import demo_flow
demo_flow.main(['lightflow_w0.5_synthetic', f'{out}/a.png', f'{out}/b.png', '--out', f'{out}/flow', '--device', 'cpu'])
flow = lightflow.read_flo(f'{out}/flow/a.flo')
assert flow.shape == (64, 96, 2), flow.shape
import torch
gt = torch.from_numpy(flow).permute(2, 0, 1)[None]  # (1, 2, 64, 96)
pred = torch.nn.functional.avg_pool2d(gt, 4) / 20.0  # the 1/4-res target itself
assert float(lightflow.losses.flow_l1_loss(pred, gt, torch.ones(1, 64, 96, dtype=torch.bool), 20.0)) < 1e-5
blocked = sorted(m for m in sys.modules if m.split('.')[0] in ('mmengine', 'mmcv', 'mmdet'))
assert not blocked, blocked
print('flow-only OK')
'''


def test_core_and_demo_run_without_openmmlab(tmp_path):
    result = subprocess.run([sys.executable, '-c', _FLOW_ONLY, str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'flow-only OK' in result.stdout
    assert (tmp_path / 'flow' / 'a.png').is_file()


def _setup_requirements() -> tuple[set[str], set[str]]:
    """``(install_requires, every extra)`` of setup.py as normalised distribution names."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', None) == 'setup')
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords
              if k.arg in ('install_requires', 'extras_require')}

    def names(reqs) -> set[str]:
        return {_normalise(re.split(r'[<>=!~;\[ ]', r, maxsplit=1)[0]) for r in reqs}

    return names(kwargs['install_requires']), names(r for extra in kwargs['extras_require'].values() for r in extra)


def _normalise(dist: str) -> str:
    return re.sub(r'[-_.]+', '-', dist).lower()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(top-level module, imported at import time)`` of every absolute import of a file, leaving out imports in a
    ``try`` that handles ImportError (optional dependencies)."""
    tree = ast.parse(path.read_text())
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any('ImportError' in ast.unparse(h.type or ast.Name('BaseException'))
                                             for h in node.handlers):
            optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    lazy = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name.split('.')[0], id(node) not in lazy) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split('.')[0], id(node) not in lazy))
    return found


def test_every_third_party_import_is_declared_in_setup():
    base, extras = _setup_requirements()
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for path in sorted((REPO / 'lightflow').rglob('*.py')):
        if 'engine' in path.relative_to(REPO / 'lightflow').parts:
            continue  # the mmengine glue: the `train` extra
        for module, at_import in _imports(path):
            if module in sys.stdlib_module_names or module in ('lightflow', '__future__'):
                continue
            dists = {_normalise(d) for d in distributions.get(module, [module])}
            allowed = base if at_import else base | extras
            if not dists & allowed:
                where = 'install_requires' if at_import else 'install_requires or an extra'
                missing.append(f'{path.relative_to(REPO)}: {module} ({"/".join(sorted(dists))}) not in {where}')
    assert not missing, '\n'.join(sorted(set(missing)))
