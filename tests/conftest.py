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


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('adapt_flow')``: a module of ``tools/`` (they are scripts, not a package), imported once by path."""
    import importlib.util

    cache = {}

    def load(name: str):
        if name not in cache:
            spec = importlib.util.spec_from_file_location(f'_tool_{name}', REPO / 'tools' / f'{name}.py')
            cache[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(cache[name])
        return cache[name]
    return load
