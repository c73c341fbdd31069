"""Data generation, training and evaluation of the learned perception models (docs/models.md, "Training").

`dataset` is numpy only; the other modules need the `train` extra (PyTorch), imported only by them.
"""
