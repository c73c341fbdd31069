"""Learned perception on onnxruntime: model contracts, sessions and runners (docs/models.md).

contracts   the three contracts (segmenter, pick, embedding), their metadata, the check of a file
session     SessionSettings (provider, threads), open_model (a checked load), ModelSession (runs off the loop)
preprocess  frames (RGB + depth) and crops -> model inputs; bilinear and nearest resampling
instances   query-based instance outputs -> an instance label image at the frame's size
segmenter   StowSegmenter -> StowSegmentation (classes, item instances)
pick_model  PickModel -> PickSegmentation (instances, status per instance, Eligibility records)
embedding   Embedder (crops batched, unit vectors) and cosine `match` with a threshold

onnxruntime is imported when a session is opened, not with the package.
"""
