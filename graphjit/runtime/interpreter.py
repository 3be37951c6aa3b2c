"""The NumPy interpreter: runs IR with the registry's reference kernels. It is the oracle
that every other backend and every pass is tested against."""

from __future__ import annotations

import numpy as np

from graphjit.errors import (
    BackendError,
    GraphjitError,
    NumericsError,
    ResourceError,
    ShapeError,
)
from graphjit.ir.core import Block, Function, Operation
from graphjit.ir.ops.lists import TensorList
from graphjit.ir.types import is_float_array


class Interpreter:
    def __init__(self, check_numerics: bool = False):
        self.check_numerics = check_numerics
        self.region_ops = {
            "cond": self._run_cond,
            "while": self._run_while,
            "fused": self._run_fused,
        }

    def run(self, fn: Function, args: list) -> list:
        env = dict(zip(fn.args, args))
        with np.errstate(all="ignore"):  # inf/nan follow IEEE, as in compiled code
            return self.run_block(fn.block, env)

    def run_block(self, block: Block, env: dict) -> list:
        for op in block.ops:
            if op.opdef.is_terminator:
                return [env[v] for v in op.operands]
            run = self.region_ops.get(op.name, self.run_kernel)
            env.update(zip(op.results, run(op, env)))
        return []

    def run_kernel(self, op: Operation, env: dict) -> list:
        kernel = op.opdef.kernel
        if kernel is None:
            raise BackendError(f"the interpreter cannot run op '{op.name}' here", op=op)
        try:
            out = kernel(*[env[v] for v in op.operands], **op.attrs)
        except NumericsError as e:  # a check_numerics op: point at the line that built it
            raise NumericsError(e.raw_message, op=op) from None
        except GraphjitError as e:
            if e.op is None and e.location is None:  # a kernel's own check: name the op
                raise type(e)(e.raw_message, op=op) from None
            raise
        except (ValueError, IndexError) as e:
            raise ShapeError(f"{op.name} failed at run time: {e}", op=op) from None
        except MemoryError:
            raise ResourceError(f"out of memory computing '{op.name}'", op=op) from None
        outs = out if isinstance(out, tuple) else (out,)
        outs = [o if isinstance(o, TensorList) else np.asarray(o) for o in outs]
        self._check(op, outs)
        return outs

    def _check(self, op: Operation, outs: list) -> None:
        for value, array in zip(op.results, outs):
            t = value.type
            if isinstance(array, TensorList):
                continue
            if (
                array.dtype != t.dtype.np
                or array.ndim != len(t.shape)
                or any(d is not None and d != a for d, a in zip(t.shape, array.shape))
            ):
                raise BackendError(
                    f"kernel of '{op.name}' returned {array.dtype}{list(array.shape)}, "
                    f"expected {t}",
                    op=op,
                )
            if self.check_numerics and is_float_array(array) and not np.all(np.isfinite(array)):
                what = "NaN" if np.isnan(array).any() else "infinity"
                raise NumericsError(f"check_numerics: {what} in the result of '{op.name}'", op=op)

    def _run_cond(self, op: Operation, env: dict) -> list:
        branch = op.regions[0 if bool(env[op.operands[0]]) else 1]
        return self.run_block(branch.block, env)

    def _run_fused(self, op: Operation, env: dict) -> list:
        body = op.regions[0].block
        env.update(zip(body.args, [env[v] for v in op.operands], strict=True))
        return self.run_block(body, env)

    def _run_while(self, op: Operation, env: dict) -> list:
        before, after = (r.block for r in op.regions)
        values = [env[v] for v in op.operands]
        limit = op.attrs["max_iterations"]
        count = 0
        while limit is None or count < limit:
            env.update(zip(before.args, values))
            if not bool(self.run_block(before, env)[0]):
                break
            env.update(zip(after.args, values))
            values = self.run_block(after, env)
            count += 1
        return values
