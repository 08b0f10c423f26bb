"""The choices the inference functions accept, importable without torch (the CLI lists them)."""

AVERAGES = ("probs", "logits")  # what is averaged over crops and models
BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "torchscript")
POOLS = ("avg", "none")  # features of a trunk layer: averaged over space, or the whole maps
FEATURE_SUFFIXES = (".npy", ".parquet")
