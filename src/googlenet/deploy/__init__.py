"""Deployment: export (ONNX, TorchScript, safetensors), int8 quantization, benchmarks."""
