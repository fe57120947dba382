"""facecam: real-time face segmentation, with its own training and ONNX export.

The repository root is this package; `realtime/`, `training/` and `export/` are its
subpackages (see DESIGN.md). Importing it has no side effects.
"""

__version__ = "0.1.0"
