"""CPU latency of Light Flow through every inference backend, next to OpenCV DIS, and of the video detector's
non-key-frame step next to its key-frame step.

    PYTHONPATH=. python tools/benchmark_flow.py [--threads 1 2] [--sizes 384x512 64x128] [--repeats 30 --warmup 5]
        [--models lightflow_w1_0 lightflow_w0_75 lightflow_w0_5 flownets] [--no-nonkey] [--out table.md]

For each thread count and input size, every path of every model is timed in turn, round after round (a block of
``--block`` consecutive calls per path and round, after one untimed call), so that bursts of load from other processes
hit all columns alike; tables report medians (ms, batch 1, fp32):

* plain eager: ``model(img1, img2)`` under ``torch.no_grad()`` plus the upsampling (what a user writes by hand);
* one column per backend of :class:`lightflow.FlowEstimator` (``torch`` = BN-folded channels-last eager,
  ``onnxruntime``, ``openvino``), each compiled once for the shape before timing;
* ``estimate_flow``: the default call (``backend='auto'``), with the backend it picked;
* OpenCV DIS presets ULTRAFAST / FAST / MEDIUM on the same frames (grey), ``cv2.setNumThreads`` = threads.

The frames are the first shared Flying Chairs pair resized to the size when ``../shared/data`` is there, else random.
FLOPs: ``torch.utils.flop_counter`` of the network; GFLOP/s of the fastest backend is shown next to the fp32 GEMM rate
(``torch.mm``) measured between rounds. ``--nonkey`` (default on when mmdet is installed) times the synthetic VID
detector (configs/vid/dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py, at its frame size): the key-frame
step (backbone + neck + head, no NMS) against the non-key step (flow + warp + head, no NMS) in PyTorch, ONNX Runtime and
OpenVINO, with the non-key step's parts profiled in PyTorch. (Whole frames of a trained detector on real frames,
post-processing included: ``tools/benchmark_vid.py``'s profile.)
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Callable

from lightflow.baseline_flow import DIS_PRESETS, create_dis
from lightflow.benchmarking import benchmark_pair, gemm_gflops, timed_rounds
from lightflow.cli import ArgumentParser, image_size, positive_int, run_main

MODEL_NAMES = ('lightflow_w1_0', 'lightflow_w0_75', 'lightflow_w0_5', 'flownets')
VID_CONFIG = (Path(__file__).resolve().parents[1] / 'configs' / 'vid'
              / 'dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py')
SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='CPU latency of Light Flow per backend, OpenCV DIS, and the non-key step.')
    parser.add_argument('--threads', type=positive_int, nargs='+', default=[1, 2], help='thread counts (default 1 2)')
    parser.add_argument('--sizes', type=image_size(), nargs='+', default=[(384, 512), (64, 128)],
                        help='HxW input sizes (default 384x512 and 64x128, the synthetic VID detector\'s flow size)')
    parser.add_argument('--repeats', type=positive_int, default=40, help='timed calls per path (median reported)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument('--block', type=positive_int, default=8, help='consecutive timed calls per path and round')
    parser.add_argument('--pause', type=float, default=0.05, help='seconds of idle before each block')
    parser.add_argument('--models', nargs='+', default=list(MODEL_NAMES[:3]), choices=MODEL_NAMES, help='rows')
    parser.add_argument('--no-dis', action='store_true', help='skip the OpenCV DIS rows')
    parser.add_argument('--no-nonkey', action='store_true', help='skip the video detector key / non-key profile')
    parser.add_argument('--gemm-size', type=positive_int, default=1024, help='n of the n^3 fp32 torch.mm rate probe')
    parser.add_argument('--out', help='also write the tables here (atomically)')
    args = parser.parse_args(argv)
    if args.warmup < 0:
        raise ValueError(f'--warmup must be >= 0, got {args.warmup}')
    return args


def rounds(paths: dict[str, Callable[[], object]], args: argparse.Namespace, desc: str,
           gemm: list[float] | None = None) -> dict[str, float]:
    """Median ms of each path: :func:`lightflow.benchmarking.timed_rounds` with ``--repeats``, ``--warmup``,
    ``--block``, ``--pause`` and ``--gemm-size``."""
    return timed_rounds(paths, args.repeats, args.warmup, args.block, args.pause, desc, gemm, args.gemm_size)


def flow_table(threads: int, size: tuple[int, int], args: argparse.Namespace) -> str:
    import cv2
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from lightflow import FlowEstimator, available_backends, estimate_flow, flow_estimator
    from lightflow.models import LightFlow, flownets, lightflow_w0_5, lightflow_w0_75, lightflow_w1_0
    from lightflow.sysinfo import cpu_name

    factories = {'lightflow_w1_0': (lightflow_w1_0, 'Light Flow 1.0'),
                 'lightflow_w0_75': (lightflow_w0_75, 'Light Flow 0.75'),
                 'lightflow_w0_5': (lightflow_w0_5, 'Light Flow 0.5'), 'flownets': (flownets, 'FlowNetS')}
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    h, w = size
    chairs = SHARED / 'FlyingChairs_mini' / 'data'
    (img1, img2), grey_src = benchmark_pair(h, w, [chairs / '00001_img1.ppm', chairs / '00001_img2.ppm'])
    backends = available_backends()
    paths, rows = {}, []
    for name in args.models:
        factory, label = factories[name]
        torch.manual_seed(0)
        model = factory().eval()
        ph, pw = -(-h // 64) * 64, -(-w // 64) * 64
        with torch.device('meta'), FlopCounterMode(display=False) as counter:
            factory().forward_features(torch.empty(1, 6, ph, pw, device='meta'))
        gflops = counter.get_total_flops() / 1e9

        def plain(model=model):
            with torch.no_grad():
                x = F.pad(model.normalize(img1, img2), (0, pw - w, 0, ph - h), mode='replicate')
                pred = model.forward_features(x) * model.div_flow
                return F.interpolate(pred, size=(ph, pw), mode='bilinear', align_corners=False)[..., :h, :w]
        paths[(name, 'plain')] = plain
        if isinstance(model, LightFlow):
            for backend in backends:
                est = FlowEstimator(model, backend)
                est(img1, img2)  # compile before timing
                paths[(name, backend)] = lambda est=est: est(img1, img2)

            def auto(model=model):
                with torch.inference_mode():
                    return estimate_flow(model, img1, img2)
            with torch.enable_grad():
                reference = estimate_flow(model, img1, img2).detach()
            diff = float((auto() - reference).abs().max())
            paths[(name, 'auto')] = auto
            picked = flow_estimator(model).selected[tuple(img1.shape)]
            rows.append((name, label, gflops, picked, diff))
        else:
            rows.append((name, label, gflops, None, float('nan')))
    if not args.no_dis:
        grey = [cv2.cvtColor(i, cv2.COLOR_RGB2GRAY) for i in grey_src]
        for preset in DIS_PRESETS:
            dis = create_dis(preset)
            paths[('dis', preset)] = lambda dis=dis: dis.calc(grey[0], grey[1], None)
    gemm = [gemm_gflops(args.gemm_size)]
    med = rounds({f'{k[0]}/{k[1]}': v for k, v in paths.items()}, args, f'{threads}T {h}x{w}', gemm)
    rate = statistics.median(gemm)
    cols = ['plain', *backends, 'auto']
    lines = [f'#### {h}x{w}, {threads} thread{"s" if threads > 1 else ""}', '',
             f'CPU: {cpu_name()}; fp32 GEMM {rate:.0f} GFLOP/s; median of {args.repeats} calls per path.', '',
             '| model | GFLOPs | plain eager | ' + ' | '.join(b for b in backends) +
             ' | **estimate_flow** (picked) | best GFLOP/s (% GEMM) | max diff (px) |',
             '|---|---:|---:|' + '---:|' * len(backends) + '---:|---:|---:|']
    for name, label, gflops, picked, diff in rows:
        vals = {c: med.get(f'{name}/{c}') for c in cols}
        best = min(v for v in vals.values() if v is not None)
        cells = [label, f'{gflops:.2f}'] + [('-' if vals[c] is None else f'{vals[c]:.2f}') for c in cols[:-1]]
        cells.append('-' if vals['auto'] is None else f'**{vals["auto"]:.2f}** ({picked})')
        cells.append(f'{gflops / best * 1e3:.0f} ({100 * gflops / best * 1e3 / rate:.0f} %)')
        cells.append('-' if math.isnan(diff) else f'{diff:.1e}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    if not args.no_dis:
        lines.append('| OpenCV DIS ' + ' / '.join(DIS_PRESETS) + ' | | ' +
                     ' / '.join(f'{med[f"dis/{p}"]:.2f}' for p in DIS_PRESETS) + ' |' + ' |' * (len(cols) + 1))
    print('\n'.join(lines), file=sys.stderr)
    return '\n'.join(lines) + '\n'


def nonkey_table(threads: int, args: argparse.Namespace) -> str:
    """Key-frame step vs non-key step of the synthetic VID detector (no NMS), per backend, plus the parts."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_plugin  # noqa: F401
    from lightflow.inference.backends import available_backends, onnx_session
    from mmdet_plugin.export import NonKeyStep, nonkey_inputs, onnx_nonkey_bytes

    torch.set_num_threads(threads)
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(VID_CONFIG))
    torch.manual_seed(0)
    det = MODELS.build(cfg.model).eval()
    w, h = cfg.img_scale  # the synthetic set's frame size (mmcv order: width, height)
    g = torch.Generator().manual_seed(0)
    key_img, img = torch.randn(1, 3, h, w, generator=g), torch.randn(1, 3, h, w, generator=g)
    inputs = nonkey_inputs(det, key_img, img)
    step = NonKeyStep(det).eval()
    head = det.detector.bbox_head

    def key_step():
        with torch.inference_mode():
            return head(tuple(det.detector.extract_feat(img)))

    def detector_nonkey():  # what FlowVideoDetector.predict runs on a non-key frame, minus NMS
        with torch.inference_mode():
            return head(tuple(det.warp(inputs[:-2], det.motion(img, key_img))))

    def torch_step():
        with torch.inference_mode():
            return step(*inputs)

    with torch.inference_mode():
        flow = det.motion(img, key_img)
        warped = tuple(det.warp(inputs[:-2], flow))
    parts = {'flow (motion, auto backend)': lambda: det.motion(img, key_img),
             'warp (FlowWarp, grid_sample)': lambda: det.warp(inputs[:-2], flow),
             'head': lambda: head(warped)}
    paths = {'key step (backbone + FPN + head)': key_step, 'non-key: FlowVideoDetector path': detector_nonkey,
             'non-key: NonKeyStep, torch': torch_step}
    data = onnx_nonkey_bytes(det, h, w)
    names = [f'key_feat{i}' for i in range(len(inputs) - 2)] + ['key_img', 'img']
    feeds = {n: x.numpy() for n, x in zip(names, inputs)}
    for backend in available_backends():
        if backend != 'torch':  # the sessions estimate_flow builds (lightflow.inference.backends), same options
            session = onnx_session(backend, data, threads)
            paths[f'non-key: exported graph, {backend}'] = lambda session=session: session.run(feeds)
    with torch.inference_mode():
        med = rounds({**paths, **{f'part: {k}': v for k, v in parts.items()}}, args, f'{threads}T non-key')
    key_ms = med['key step (backbone + FPN + head)']
    flow_h, flow_w = det.motion.flow_inputs(img, img)[0].shape[-2:]
    plural = 's' if threads > 1 else ''
    lines = [f'#### Synthetic VID detector ({h}x{w}, flow {flow_h}x{flow_w}), {threads} thread{plural}', '',
             '| step | ms | / key step |', '|---|---:|---:|']
    for k, v in med.items():
        lines.append(f'| {k} | {v:.2f} | {v / key_ms:.2f} |')
    print('\n'.join(lines), file=sys.stderr)
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    import torch

    from lightflow.io import atomic_write
    from lightflow.sysinfo import cpu_name
    out = [f'### Light Flow CPU latency (ms, batch 1, fp32): {cpu_name()}, torch {torch.__version__}', '']
    for threads in args.threads:
        for size in args.sizes:
            out.append(flow_table(threads, size, args))
    if not args.no_nonkey:
        import importlib.util
        if importlib.util.find_spec('mmdet') is None:
            print('mmdet not installed: skipping the non-key step profile', file=sys.stderr)
        else:
            for threads in args.threads:
                out.append(nonkey_table(threads, args))
    text = '\n'.join(out)
    print(text)
    if args.out:
        with atomic_write(args.out, 'w') as f:
            f.write(text)
    return text


if __name__ == '__main__':
    sys.exit(run_main(main))
