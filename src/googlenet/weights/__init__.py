"""Model sources: published weights (torchvision's, BVLC's Caffe), downloads, and any file
or name turned into an Artifact (sources.load_artifact)."""
