"""The documented schema of `graphjit bench --json FILE` (JSON Schema, draft 2020-12
subset), and a small validator for that subset so no extra dependency is needed.

Times are seconds per call: each of a timing's samples is the time of `sample_loops[i]`
calls divided by that count: `loops`, calibrated so that a sample lasts at least
`settings.min_time_s`, or fewer after a sample overran (see `timing.OVERRUN`). `spread`
is the interquartile range over the median; `busy` is true where the spread says the
machine was busy (see `timing.is_busy`), null where it is not judged. `speedup_vs_eager`
is graphjit eager's median divided by this mode's median (above 1: faster than graphjit
eager). `loaded` is the cell timed again beside `settings.busy_processes` busy processes
(`--busy N`; null without them, and for a workload of fresh inputs). `cores` (and
`loaded_cores`) is the process's CPU time, all its threads, over the wall time of that
timing: 2 where a mode keeps two cores busy. `compile_s` is the wall time of building
the workload for the mode plus its first call (so it includes any compilation)."""

from __future__ import annotations

# 2 added calibration: loops, sample_loops, busy, spread, warmup, min_time_s, fresh_inputs;
# 3 added the background load (settings.busy_processes, each cell's `loaded`) and the cores
# each cell's process used (`cores`, `loaded_cores`)
SCHEMA_ID = "graphjit-bench/3"

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}

TIMING = {
    "type": ["object", "null"],
    "required": ["median_s", "q1_s", "q3_s", "min_s", "max_s", "repeats", "samples_s"]
    + ["loops", "sample_loops", "busy", "spread", "warmup"],
    "additionalProperties": False,
    "properties": {
        "median_s": {"type": "number", "minimum": 0},
        "q1_s": {"type": "number", "minimum": 0},
        "q3_s": {"type": "number", "minimum": 0},
        "min_s": {"type": "number", "minimum": 0},
        "max_s": {"type": "number", "minimum": 0},
        "repeats": {"type": "integer", "minimum": 1},
        "samples_s": {"type": "array", "items": {"type": "number"}, "minItems": 1},
        "loops": {"type": "integer", "minimum": 1},  # calls per sample, as calibrated
        # each sample's calls: `loops`, fewer after a sample overran (a busy machine)
        "sample_loops": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "busy": {"type": ["boolean", "null"]},  # null: not judged
        "spread": {"type": "number", "minimum": 0},  # IQR / median
        "warmup": {"type": "integer", "minimum": 0},  # untimed calls before the samples
    },
}

CELL = {
    "type": "object",
    "required": ["mode", "status", "reason", "note", "compile_s", "timing", "dispatch"]
    + ["loaded", "cores", "loaded_cores", "max_abs_error", "speedup_vs_eager"],
    "additionalProperties": False,
    "properties": {
        "mode": {"type": "string"},
        "status": {"enum": ["ok", "error", "skipped"]},
        "reason": _STRING_OR_NULL,  # why it is an error or skipped; null when ok
        "note": {"type": "string"},  # how this mode runs the workload, where it differs
        "compile_s": _NUMBER_OR_NULL,
        "timing": TIMING,  # null unless status is ok
        "dispatch": TIMING,  # a trivial run of the same session: static modes only
        "loaded": TIMING,  # the same timing beside settings.busy_processes busy processes
        # the process's CPU time (all its threads) over the wall time, timing and loaded
        "cores": {"type": ["number", "null"], "minimum": 0},
        "loaded_cores": {"type": ["number", "null"], "minimum": 0},
        "max_abs_error": _NUMBER_OR_NULL,  # against the reference result
        "speedup_vs_eager": _NUMBER_OR_NULL,
    },
}

WORKLOAD = {
    "type": "object",
    "required": ["name", "description", "params", "tolerance_scale", "fresh_inputs", "results"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "params": {"type": "object"},
        "tolerance_scale": {"type": "number"},
        # each sample is one first call at an input not seen before (a new batch size)
        "fresh_inputs": {"type": "boolean"},
        "results": {"type": "array", "items": CELL},
    },
}

MODE = {
    "type": "object",
    "required": ["name", "label", "static", "available", "skip_reason"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "label": {"type": "string"},
        "static": {"type": "boolean"},
        "available": {"type": "boolean"},
        "skip_reason": _STRING_OR_NULL,
    },
}

LOAD_AVERAGE = {"type": ["array", "null"], "items": {"type": "number"}}

REPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "graphjit bench report",
    "type": "object",
    "required": ["schema", "created", "seconds", "settings", "machine", "libraries"]
    + ["modes", "workloads"],
    "additionalProperties": False,
    "properties": {
        "schema": {"enum": [SCHEMA_ID]},
        "created": {"type": "string"},  # ISO 8601, UTC
        "seconds": {"type": "number"},  # the whole run
        "settings": {
            "type": "object",
            "required": ["size", "repeat", "warmup", "min_time_s", "workloads", "modes"]
            + ["reference_mode", "baseline_mode", "torch_compile_backend", "busy_processes"],
            "properties": {
                "size": {"enum": ["tiny", "quick", "full"]},
                "repeat": {"type": "integer", "minimum": 1},
                "warmup": {"type": "integer", "minimum": 0},
                "min_time_s": {"type": "number", "minimum": 0},  # the least time per sample
                "workloads": {"type": "array", "items": {"type": "string"}},
                "modes": {"type": "array", "items": {"type": "string"}},
                "reference_mode": {"type": "string"},
                "baseline_mode": {"type": "string"},
                "torch_compile_backend": {"type": "string"},
                "busy_processes": {"type": "integer", "minimum": 0},  # --busy N
            },
        },
        "machine": {
            "type": "object",
            "required": ["cpu", "cores", "os", "python", "load_average_start"]
            + ["load_average_end", "thread_env"],
            "properties": {
                "cpu": {"type": "string"},
                "cores": {"type": ["integer", "null"]},
                "os": {"type": "string"},
                "python": {"type": "string"},
                "load_average_start": LOAD_AVERAGE,
                "load_average_end": LOAD_AVERAGE,
                "thread_env": {"type": "object", "additionalProperties": _STRING_OR_NULL},
            },
        },
        "libraries": {"type": "object", "additionalProperties": _STRING_OR_NULL},
        "modes": {"type": "array", "items": MODE},
        "workloads": {"type": "array", "items": WORKLOAD},
    },
}


class SchemaError(ValueError):
    """A report that does not match REPORT_SCHEMA; the message gives the JSON path."""


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(value, schema: dict = REPORT_SCHEMA, path: str = "$") -> None:
    """Raise SchemaError where `value` breaks `schema` (type, enum, minimum, minItems,
    required, properties, additionalProperties, items: the keywords used above)."""
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types):
            raise SchemaError(f"{path}: expected {' or '.join(types)}, got {value!r:.80}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{path}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
        raise SchemaError(f"{path}: {value} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        _validate_object(value, schema, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise SchemaError(f"{path}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            if "items" in schema:
                validate(item, schema["items"], f"{path}[{index}]")


def _validate_object(value: dict, schema: dict, path: str) -> None:
    for key in schema.get("required", []):
        if key not in value:
            raise SchemaError(f"{path}: missing required key {key!r}")
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            validate(item, properties[key], f"{path}.{key}")
        elif extra is False:
            raise SchemaError(f"{path}: unexpected key {key!r}")
        elif isinstance(extra, dict):
            validate(item, extra, f"{path}.{key}")
