"""Convolution and pooling functions (gj.nn.conv2d, conv1d, conv_transpose2d, max_pool2d,
avg_pool2d, adaptive_avg_pool2d), PyTorch's NCHW convention, for both modes."""

from __future__ import annotations

__all__: list[str] = []
