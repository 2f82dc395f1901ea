"""Installs `lightflow` (pure PyTorch + torchvision) and `mmdet_plugin` (the mmdetection 3.x adapter).

The base install runs everything outside `lightflow.engine`: the network, inference, I/O, datasets, transforms, the
synthetic data, the loss and tools/demo_flow.py (tests/test_flow_only_install.py checks that every import of those
modules is declared here). Extras: `train` adds mmengine + TensorBoard for tools/train_flow.py; `deploy` adds the ONNX
export and the ONNX Runtime / OpenVINO backends; `mmdet` adds the OpenMMLab fork (onedl-*) for the video-detection
plugin. Exact versions live in requirements/constraints.txt (`pip install -c requirements/constraints.txt`).
mmcv's compiled ops need a wheel built for torch 2.14.1: see the README, "Install".
"""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = '0.1.0'
for line in (here / 'lightflow' / '__init__.py').read_text().splitlines():
    if line.startswith('__version__'):
        version = line.split('=')[1].strip().strip("'\"")

setup(
    name='lightflow',
    version=version,
    description='Light Flow (arXiv 1804.05830) in PyTorch, and an mmdetection plugin for flow-guided video detection',
    long_description=(here / 'README.md').read_text() if (here / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['lightflow', 'lightflow.*', 'mmdet_plugin', 'mmdet_plugin.*', 'lightflow_deploy',
                                    'lightflow_deploy.*']),
    # The shipped pretrained weights (lightflow.load_pretrained); MANIFEST.in puts them in the sdist too.
    package_data={'lightflow': ['weights/*.pth']},
    # opencv-python rather than -headless: mmcv (the `mmdet` extra) depends on it, and both provide `cv2`.
    install_requires=['torch>=2.4', 'torchvision', 'numpy', 'opencv-python', 'imageio', 'imageio-ffmpeg',
                      'scikit-image', 'tqdm'],
    extras_require={
        'train': ['onedl-mmengine', 'tensorboard', 'matplotlib'],
        'deploy': ['onnx', 'onnxruntime', 'openvino'],
        'mmdet': ['onedl-mmengine', 'onedl-mmcv', 'onedl-mmdetection', 'pycocotools', 'matplotlib'],
        'tests': ['pytest'],
    },
    license='Apache-2.0',
)
