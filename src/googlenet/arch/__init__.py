"""The architecture as data: the paper's Table 1, its variants, output sizes, parameters and
multiply-adds, and their reports. Pure Python: nothing here imports torch."""
