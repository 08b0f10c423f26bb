"""GoogLeNet as PyTorch modules, built by walking the architecture table (googlenet.arch)."""
