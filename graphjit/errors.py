"""The exception hierarchy: every error graphjit raises derives from GraphjitError.

Errors carry the op they concern and the user's source line where that op was built, so a
message points at the user's program, not at graphjit's internals.
"""

from __future__ import annotations


class GraphjitError(Exception):
    """Base class of every graphjit error."""

    def __init__(self, message: str, op=None, location=None):
        self.op = op
        self.location = location if location is not None else getattr(op, "loc", None)
        self.raw_message = message
        super().__init__(self._format(message))

    def _format(self, message: str) -> str:
        where = []
        if self.op is not None:
            where.append(f"op '{self.op.name}'")
        if self.location is not None:
            where.append(f"built at {self.location}")
        return f"{message} [{', '.join(where)}]" if where else message


class ShapeError(GraphjitError, ValueError):
    """Incompatible or invalid shapes (broadcasting, matmul, reshape, loop bodies)."""


class DTypeError(GraphjitError, TypeError):
    """Incompatible or unsupported dtypes."""


class FeedError(GraphjitError, ValueError):
    """A feed_dict entry is missing, unknown, or has the wrong shape or dtype."""


class FeedShapeError(FeedError, ShapeError):
    """A fed array's shape does not match its placeholder."""


class FeedDTypeError(FeedError, DTypeError):
    """A fed array's dtype cannot be converted to its placeholder's dtype."""


class FetchError(GraphjitError, ValueError):
    """A fetch is not something of this graph that a Session can compute."""


class ControlFlowError(GraphjitError, ValueError):
    """cond branches or while_loop bodies that do not agree in structure, dtype or shape."""


class GradientError(GraphjitError):
    """A gradient was asked through an op that has no VJP rule, or autograd misuse."""


class VerificationError(GraphjitError):
    """The IR breaks an invariant (dominance, types, terminators)."""


class ParseError(GraphjitError, ValueError):
    """Malformed IR text; carries the line and column."""

    def __init__(self, message: str, line: int, column: int):
        self.line, self.column = line, column
        super().__init__(f"{message} (line {line}, column {column})")


class NumericsError(GraphjitError, FloatingPointError):
    """check_numerics found NaN or infinity in an op's result."""


class ResourceError(GraphjitError, MemoryError):
    """A tensor or a compiled program would need more memory than the limit allows; raised
    before anything is allocated."""


class CheckpointError(GraphjitError, OSError):
    """A checkpoint file is missing, corrupt, or does not match the graph's variables."""


class BackendError(GraphjitError):
    """A backend is unavailable or cannot lower an op."""


class ConfigError(GraphjitError, ValueError):
    """An environment variable (GRAPHJIT_*) has a value graphjit cannot use; the message
    names the variable and the values it takes."""


class RuntimeCheckError(GraphjitError):
    """A runtime check inside compiled code failed."""


class RetraceWarning(UserWarning):
    """A gj.function has been traced (and compiled) many times: some argument changes
    from call to call in a way that selects a new trace (a value it branches on, a
    shape)."""
