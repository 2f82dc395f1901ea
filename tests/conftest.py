"""Shared fixtures: the real samples in ../shared/data (skipped when absent) and a small thread budget."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('LIGHTFLOW_SHARED_DATA', REPO.parent / 'shared' / 'data'))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The folder of real research samples; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real samples not found at {SHARED_DATA}')
    return SHARED_DATA
