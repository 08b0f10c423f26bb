"""One record for "a model you can use" (Artifact): variant, classes, preprocessing,
provenance, weights; and the one metadata schema every file format stores it with."""
