"""Data: digits, ImageFolder trees and tar archives, the paper's augmentation, test-time crops,
resumable loaders.

    datasets = load_datasets(config.data, config.augment, seed)      # googlenet.data.splits
    loader = make_loader(datasets.train, batch_size, train=True, workers=2, seed=seed)
    for epoch in ...:
        loader.set_epoch(epoch)          # or set_epoch(epoch, skip_batches=k) to resume mid-epoch
        for images, labels, bad in loader: ...

The package imports nothing itself: import the module you need (config.py needs no torch).
"""
