"""facecam: real-time face segmentation, with its own training and ONNX export.

The public API is :class:`FaceStream` (one object per stream of frames; see the README's
"Use it from Python"). The repository root is this package; ``realtime/`` (the runtime),
``training/`` and ``export/`` are its subpackages. Importing it has no side effects: no
signal handler, no log level, no model loaded.
"""

from facecam.api import SAMPLE_VIDEO, FaceStream, Result, video_frames
from facecam.errors import FacecamError
from facecam.realtime.compose import MODES
from facecam.realtime.crops import Box

__version__ = "0.1.0"

__all__ = ["MODES", "SAMPLE_VIDEO", "Box", "FaceStream", "FacecamError", "Result", "video_frames", "__version__"]
