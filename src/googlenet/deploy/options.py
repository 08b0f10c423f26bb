"""Export and quantization settings, importable without torch (the CLI lists them)."""

FORMATS = ("onnx", "openvino", "torchscript", "safetensors")
# TorchScript files get their own suffix: a ".pt" would look like a checkpoint. OpenVINO's IR
# is an .xml (the graph, which holds the metadata) with a .bin of the same name (the weights).
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".torchscript",
            "safetensors": ".safetensors"}
QUANTIZE_ENGINES = ("onnxruntime", "openvino")
DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-3  # max abs logit difference accepted by the parity check (fp32)
