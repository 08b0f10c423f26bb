"""Using a model: backends (torch, onnxruntime, TorchScript), Predictor, evaluation with the
paper's crops and ensembles, features, reports."""
