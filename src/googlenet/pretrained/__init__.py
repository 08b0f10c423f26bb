"""Pretrained weights: torchvision's ImageNet weights, BVLC's Caffe weights, local files."""
