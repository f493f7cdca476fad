"""Train and distill cross-encoders (`rerank-bridge train` / `distill`; the `train` extra).

Only :mod:`bridge.training.torch_model` imports PyTorch and transformers, lazily, so the core
install and every other command work without them.
"""
