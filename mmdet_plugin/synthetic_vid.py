"""Backwards-compatible home of the synthetic VID generator, which now lives in :mod:`lightflow.data.synthetic.vid`
(pure numpy; nothing there imports mmdet). ``from mmdet_plugin.synthetic_vid import ...`` keeps working."""
from lightflow.data.synthetic.vid import *  # noqa: F401,F403
from lightflow.data.synthetic.vid import __all__  # noqa: F401
