"""Export of trained checkpoints to ONNX (FP32 and FP16) with the model card inside (needs torch)."""
