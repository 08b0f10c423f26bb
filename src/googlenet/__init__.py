"""GoogLeNet (Inception v1), Szegedy et al., "Going Deeper with Convolutions", CVPR 2015."""

from .arch import TABLE_1, VARIANTS
from .model import GoogLeNet, build_model

__version__ = "0.1.0"
__all__ = ["TABLE_1", "VARIANTS", "GoogLeNet", "build_model", "__version__"]
