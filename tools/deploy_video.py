"""Run an exported video detector on a video file or a frame folder, without PyTorch.

    PYTHONPATH=. python tools/deploy_video.py GRAPHS VIDEO --out RESULT.json [--backend onnxruntime|openvino]
        [--out-video OUT.mp4] [--threads 1]

GRAPHS is a folder from tools/export_video_detector.py (digests checked). Frames of another size than the manifest's
are resized as the detector's test pipeline does (Resize keep_ratio); a size whose result does not fit the graphs is
refused. Writes {frames: [{frame, is_key, motion_px, detections: [{box, score, label, class}]}], fps}.
"""
import sys

from lightflow_deploy.cli import main

if __name__ == '__main__':
    sys.exit(main())
