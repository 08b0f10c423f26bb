"""`googlenet batch`: predictions and embeddings of a whole collection of images on Ray Data.

Ray Data's batch-inference pattern (read -> decode on CPU tasks -> the model on a pool of
actors -> Parquet), with this package's own pieces in each stage: the bounded reads and decoding
of googlenet.data.images, the model's eval transform, and the Predictor / feature code of
googlenet.inference, so that every answer is the single-process command's. Ray is the `ray`
extra, imported only when a job runs.

    inputs.py  what to read: folders, globs, listing files, s3:// and gs:// URIs -> (file, size, mtime)
    parts.py   the output folder: complete Parquet parts only, and the files already written
    job.py     the job: its settings, its stages, and running it on a local or remote Ray
"""
