"""`gj.nn` functions shared by both modes (the eager module classes extend this namespace)."""

from graphjit.frontend.ops import log_softmax, relu, sigmoid, softmax, softmax_cross_entropy, tanh

__all__ = ["log_softmax", "relu", "sigmoid", "softmax", "softmax_cross_entropy", "tanh"]
