"""graphjit: a static-graph tensor compiler with an eager mode beside it.

`import graphjit as gj`; the public names are listed in docs/api.md.
"""

from graphjit import errors, ir
from graphjit.errors import (
    BackendError,
    CheckpointError,
    ConfigError,
    ControlFlowError,
    DTypeError,
    FeedDTypeError,
    FeedError,
    FeedShapeError,
    FetchError,
    GradientError,
    GraphjitError,
    NumericsError,
    ParseError,
    ResourceError,
    RetraceWarning,
    RuntimeCheckError,
    ShapeError,
    VerificationError,
)
from graphjit.frontend import train
from graphjit.frontend.control_flow import cond, while_loop
from graphjit.frontend.gradients import gradients
from graphjit.frontend.graph import (
    Graph,
    Variable,
    constant,
    get_default_graph,
    group,
    placeholder,
    reset_default_graph,
)
from graphjit.frontend.operators import install_graph_guards, install_operators
from graphjit.frontend.ops import (
    abs,
    add,
    argmax,
    cast,
    check_numerics,
    cos,
    div,
    equal,
    exp,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    norm,
    not_equal,
    one_hot,
    pow,
    relu,
    sigmoid,
    sign,
    sin,
    softmax,
    sqrt,
    square,
    std,
    stop_gradient,
    sub,
    sum,
    tanh,
    var,
    where,
)
from graphjit.frontend.shape_ops import (
    broadcast_to,
    concat,
    expand_dims,
    reshape,
    squeeze,
    stack,
    transpose,
)
from graphjit.ir.types import (
    bfloat16,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int32,
    int64,
    uint8,
)
from graphjit.runtime.session import Session
from graphjit.runtime.threads import get_num_threads, set_num_threads
from graphjit.version import __version__

install_operators(ir.Value)
install_graph_guards(ir.Value)
install_operators(Variable)

# Families of names that list themselves (each module's __all__); the eager mode (gj.tensor,
# gj.autograd, gj.nn, gj.optim) registers its handler with the op registry on import.
import graphjit.mlir as mlir  # noqa: E402 (gj.mlir.export; IREE only when used)
from graphjit import distributed  # noqa: E402 (gj.distributed; MPI loads on first use)
from graphjit.frontend import random  # noqa: E402 (gj.random.normal, ...)
from graphjit.frontend import tf1 as _tf1  # noqa: E402
from graphjit.frontend.activations import *  # noqa: E402,F401,F403
from graphjit.frontend.compat import *  # noqa: E402,F401,F403
from graphjit.frontend.conv import *  # noqa: E402,F401,F403
from graphjit.frontend.dynamic_slicing import *  # noqa: E402,F401,F403
from graphjit.frontend.eager import *  # noqa: E402,F401,F403
from graphjit.frontend.einsum import *  # noqa: E402,F401,F403
from graphjit.frontend.indexing import *  # noqa: E402,F401,F403
from graphjit.frontend.losses import *  # noqa: E402,F401,F403
from graphjit.frontend.math_ops import *  # noqa: E402,F401,F403
from graphjit.frontend.normalization import *  # noqa: E402,F401,F403
from graphjit.frontend.random import *  # noqa: E402,F401,F403
from graphjit.frontend.sorting import *  # noqa: E402,F401,F403
from graphjit.frontend.tensor_array import *  # noqa: E402,F401,F403
from graphjit.frontend.tf1 import *  # noqa: E402,F401,F403
from graphjit.frontend.tracing import function  # noqa: E402 (needs the eager mode)

for _name in _tf1.TAKES_NAME:  # TF1's name= on the op functions that lack it
    globals()[_name] = _tf1.takes_name(globals()[_name])
del _name
