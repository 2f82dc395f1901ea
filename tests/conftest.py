"""Shared fixtures: the real samples in ../shared/data (skipped when absent) and a small thread budget."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# With the default (active) OpenMP wait policy, 2 threads on a busy 2-core machine spin against each other and run
# many times slower; passive waiting keeps the suite's time predictable.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('LIGHTFLOW_SHARED_DATA', REPO.parent / 'shared' / 'data'))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The folder of real research samples; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real samples not found at {SHARED_DATA}')
    return SHARED_DATA


_TOOLS: dict = {}


def _load_tool(name: str):
    """A module of ``tools/`` (they are scripts, not a package), imported once by path and registered in
    ``sys.modules`` (dataclasses resolve annotations through it)."""
    import importlib.util
    import sys

    if name not in _TOOLS:
        spec = importlib.util.spec_from_file_location(f'_tool_{name}', REPO / 'tools' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _TOOLS[name] = module
    return _TOOLS[name]


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('adapt_flow')``: the one way tests load a tool (see :func:`_load_tool`)."""
    return _load_tool
