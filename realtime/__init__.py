"""Realtime side of facecam: ONNX inference, smoothing, composition and the threaded pipeline (no torch)."""
