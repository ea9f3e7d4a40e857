"""Exports and builds: ONNX now; quantized models and engines later."""
