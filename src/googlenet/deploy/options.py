"""Export and quantization settings, importable without torch (the CLI lists them)."""

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-3  # max abs logit difference accepted by the parity check (fp32)
