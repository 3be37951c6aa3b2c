"""Eager mode (define-by-run), PyTorch-style: `gj.tensor`, tape autograd, `gj.nn`, `gj.optim`.

Importing this package registers the eager handler with the op registry, so the op functions
shared with the static graph (`gj.mul`, `gj.exp`, ...) and the VJP rules run on `gj.Tensor`.
"""

import sys

from graphjit.frontend.convert import register_tensor_type
from graphjit.frontend.eager.dispatch import HANDLER
from graphjit.frontend.eager.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from graphjit.frontend.eager.tensor import Tensor
from graphjit.frontend.eager.tensor_methods import install_tensor_methods
from graphjit.ir.ops import register_handler

register_handler(Tensor, HANDLER)
register_tensor_type(Tensor, HANDLER)
install_tensor_methods(Tensor)

from graphjit.frontend.eager import autograd, lr_scheduler, nn, optim  # noqa: E402
from graphjit.frontend.eager.factories import (  # noqa: E402
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)

# `from graphjit.autograd import Function`, `import graphjit.nn as nn`: the spellings PyTorch
# users reach for, resolving to the same modules as gj.autograd, gj.nn and gj.optim.
for _module in (autograd, nn, optim):
    sys.modules.setdefault(f"graphjit.{_module.__name__.rsplit('.', 1)[1]}", _module)
# ... and their submodules (`import graphjit.nn.functional as F`): nn and optim are plain
# modules, not packages, so the import system finds these only here.
for _name, _module in {
    "nn.functional": nn.functional,
    "nn.init": nn.init,
    "nn.utils": nn.utils,
    "optim.lr_scheduler": lr_scheduler,
}.items():
    sys.modules.setdefault(f"graphjit.{_name}", _module)

__all__ = [
    "Tensor",
    "arange",
    "autograd",
    "empty",
    "empty_like",
    "enable_grad",
    "eye",
    "from_numpy",
    "full",
    "full_like",
    "inference_mode",
    "is_grad_enabled",
    "is_inference_mode_enabled",
    "linspace",
    "manual_seed",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "set_grad_enabled",
    "tensor",
    "zeros",
    "zeros_like",
]
