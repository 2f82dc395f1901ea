#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv and print its path on the last line.
#
# The venv lives outside the clone, keyed by the hash of requirements/constraints.txt, so repeated CI runs and fresh
# clones reuse it. mmcv's compiled ops come from ../shared/wheels when that folder exists; otherwise pip builds the
# onedl-mmcv sdist with the recipe in the README (C++20 wrapper, --no-build-isolation, setuptools<81, ~12 min on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
constraints="$root/requirements/constraints.txt"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
key="$(sha256sum "$constraints" | cut -c1-16)"
venv="${LIGHTFLOW_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lightflow/venv-$key}"

if [ -f "$venv/.complete" ]; then
    echo "$venv"
    exit 0
fi

echo "[setup_env] creating $venv (one-off; later runs reuse it)" >&2
# A venv cannot be moved (its scripts hard-code the path), so build in place; .complete marks a finished one.
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --no-input --progress-bar off -c "$constraints")
"${pip[@]}" --upgrade pip wheel "setuptools<81" packaging ninja >&2
"${pip[@]}" torch torchvision >&2

wheels="$root/../shared/wheels"
if ls "$wheels"/onedl_mmcv-*.whl >/dev/null 2>&1; then
    echo "[setup_env] mmcv from prebuilt wheel in $wheels" >&2
    "${pip[@]}" --find-links "$wheels" --only-binary onedl-mmcv onedl-mmcv >&2
else
    echo "[setup_env] no prebuilt mmcv wheel; building onedl-mmcv from source (~12 min on 2 cores)" >&2
    cxx="$venv/bin/cxx20"
    # torch 2.14 headers need C++20 but mmcv's setup.py hard-codes -std=c++17: swap the flag.
    printf '#!/bin/sh\nfor a; do shift; [ "$a" = "-std=c++17" ] && a="-std=c++20"; set -- "$@" "$a"; done\nexec g++ "$@"\n' > "$cxx"
    chmod +x "$cxx"
    CXX="$cxx" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" CFLAGS="-g0 -O2 -DNDEBUG" \
        "${pip[@]}" --no-build-isolation onedl-mmcv >&2
fi
"${pip[@]}" -r "$root/requirements/runtime.txt" >&2
"$venv/bin/python" -c "import torch, torchvision, mmcv, mmdet, mmengine; from mmcv.ops import nms" >&2

touch "$venv/.complete"
echo "$venv"
