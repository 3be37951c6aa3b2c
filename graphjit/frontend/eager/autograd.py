"""`gj.autograd`: backward, grad, custom Functions, gradcheck (PyTorch's torch.autograd)."""

from graphjit.frontend.eager.anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from graphjit.frontend.eager.custom_function import Function, FunctionCtx
from graphjit.frontend.eager.engine import backward, grad
from graphjit.frontend.eager.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from graphjit.frontend.eager.gradcheck import gradcheck

__all__ = [
    "Function",
    "FunctionCtx",
    "backward",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "gradcheck",
    "inference_mode",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "is_inference_mode_enabled",
    "no_grad",
    "set_detect_anomaly",
    "set_grad_enabled",
]
