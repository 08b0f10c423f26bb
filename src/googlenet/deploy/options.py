"""Export and quantization settings, importable without torch (the CLI lists them)."""

FORMATS = ("onnx", "torchscript", "safetensors")
# TorchScript files get their own suffix: a ".pt" would look like a checkpoint.
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript", "safetensors": ".safetensors"}
DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-3  # max abs logit difference accepted by the parity check (fp32)
