"""Convolution and pooling in PyTorch's NCHW layout: conv2d (stride, padding, dilation, groups) with its
input and filter gradients, max and average pooling with theirs."""

from __future__ import annotations
