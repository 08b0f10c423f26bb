"""Detection, the paper's second task (Sec. 8): data in COCO and VOC formats, Selective Search
proposals, the paper's R-CNN-style detector with GoogLeNet as the region classifier, torchvision's
Faster R-CNN on a GoogLeNet trunk with a feature pyramid, and mAP computed by pycocotools.

Above training (the region classifier is trained by googlenet's own loop), below the CLI.
Needs the `detect` extra (OpenCV's contrib modules, pycocotools).
"""
