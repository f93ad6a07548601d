"""Plain data between the harness and a student's kernel: JSON, and arrays as raw bytes.

Nothing that crosses is ever unpickled. A value is encoded as JSON in which a few one-key objects
mark what JSON cannot say; :func:`decode` checks every one against this schema and raises
:class:`WireError` on anything else:

``{"__float__": "nan" | "inf" | "-inf"}``
    a non-finite float;
``{"__tuple__": [...]}``, ``{"__dict__": {...}}``
    a tuple, a dict with string keys (plain JSON lists are lists);
``{"__array__": {"dtype", "shape", "data", "scalar"}}``
    a NumPy array of a numeric or boolean dtype, ``data`` its C-order bytes in base64 (a NumPy
    scalar when ``scalar``); ``{"__tensor__": <array>}`` the same as a backend tensor;
``{"__model__": {"json", "weights"}}``
    a Keras model: ``model.to_json()`` and its weights as arrays, rebuilt with Keras' safe mode
    (no Lambda layers, no classes Keras does not know);
``{"__keras__": {"config", "ref"}}``
    another Keras object (optimizer, initializer, layer): ``keras.saving.serialize_keras_object``,
    rebuilt with ``deserialize_keras_object(safe_mode=True)``;
``{"__symbolic__": {"shape", "dtype"}}``
    a symbolic Keras input (harness to kernel only): the kernel calls the student's function on a
    ``keras.Input`` and sends back the model from that input to what the function returned;
``{"__record__": {"ref", "type", "module", "fields"}}``
    a dataclass instance or a named tuple: its fields, by name (the harness gets an object with
    those attributes, whose type is named like the original: :class:`gradkit_grader.remote.Record`);
``{"__callable__": {"ref", "name"}}``, ``{"__opaque__": {"ref", "type", "repr"}}``
    what the kernel keeps (a function, any other object): the harness gets a handle
    (:class:`gradkit_grader.remote.Remote`, :class:`gradkit_grader.remote.Opaque`) that names it in
    later requests (``{"__ref__": ref}``) but never holds it.

The kernel's side of this format is :mod:`gradkit_grader.kernelshim`, sent to the kernel as text.
"""
from __future__ import annotations

import base64
import math
from typing import Any, Callable

import numpy as np

__all__ = ["WireError", "DTYPES", "MAX_ELEMENTS", "MAX_DEPTH", "encode", "decode", "encode_array",
           "decode_array"]

#: dtypes an array may have on the wire
DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                    "float16", "float32", "float64", "complex64", "complex128"})
#: most elements of one array (a float64 array of this size is 512 MiB)
MAX_ELEMENTS = 1 << 26
#: deepest nesting of lists, tuples and dicts
MAX_DEPTH = 32
_MARKERS = ("__float__", "__tuple__", "__dict__", "__array__", "__tensor__", "__model__", "__keras__",
            "__symbolic__", "__callable__", "__opaque__", "__record__", "__ref__")


class WireError(ValueError):
    """Data from the kernel that does not follow the format (the message says where)."""


def encode_array(arr: np.ndarray) -> dict:
    arr = np.asarray(arr, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    if arr.dtype.name not in DTYPES:
        raise WireError(f"arrays of dtype {arr.dtype} cannot be sent")
    return {"dtype": arr.dtype.name, "shape": list(arr.shape),
            "data": base64.b64encode(arr.tobytes()).decode("ascii"), "scalar": False}


def decode_array(spec: Any, where: str = "value") -> np.ndarray:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data", "scalar"}:
        raise WireError(f"{where}: an array needs exactly dtype, shape, data, scalar")
    dtype, shape, data = spec["dtype"], spec["shape"], spec["data"]
    if dtype not in DTYPES:
        raise WireError(f"{where}: dtype {dtype!r} is not allowed")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise WireError(f"{where}: shape must be a list of non-negative ints, got {shape!r:.80}")
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise WireError(f"{where}: {size} elements is more than the {MAX_ELEMENTS} allowed")
    if not isinstance(data, str):
        raise WireError(f"{where}: data must be base64 text")
    raw = base64.b64decode(data, validate=True)
    item = np.dtype(dtype).itemsize
    if len(raw) != size * item:
        raise WireError(f"{where}: {len(raw)} bytes for shape {shape} of {dtype} ({size * item} expected)")
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if spec["scalar"] is True:
        if shape:
            raise WireError(f"{where}: a scalar must have shape []")
        return arr[()]
    if spec["scalar"] is not False:
        raise WireError(f"{where}: scalar must be true or false")
    return arr


def encode(value: Any, special: Callable[[Any], dict | None] | None = None, _depth: int = 0) -> Any:
    """The wire form of ``value``; ``special(value)`` may encode what this module does not know
    (tensors, models, handles), returning None to fall through."""
    if _depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if special is not None:
        out = special(value)
        if out is not None:
            return out
    if isinstance(value, np.generic) and value.dtype.name in DTYPES:  # before float: np.float64 is one
        return {"__array__": dict(encode_array(np.asarray(value)), scalar=True)}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.ndarray):
        return {"__array__": encode_array(value)}
    if isinstance(value, list):
        return [encode(v, special, _depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, special, _depth + 1) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v, special, _depth + 1) for k, v in value.items()}}
    raise WireError(f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent to the kernel")


def decode(data: Any, special: Callable[[str, Any, str], Any], where: str = "value", _depth: int = 0) -> Any:
    """The value of wire form ``data``; ``special(marker, payload, where)`` builds tensors, models and
    handles. Raises :class:`WireError` on anything outside the format."""
    if _depth > MAX_DEPTH:
        raise WireError(f"{where}: nested deeper than {MAX_DEPTH}")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v, special, f"{where}[{i}]", _depth + 1) for i, v in enumerate(data)]
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in _MARKERS:
        raise WireError(f"{where}: not a value of the wire format ({str(data)[:80]})")
    (marker, payload), = data.items()
    if marker == "__float__":
        if payload not in ("nan", "inf", "-inf"):
            raise WireError(f"{where}: bad non-finite float {payload!r:.20}")
        return float(payload)
    if marker == "__tuple__":
        if not isinstance(payload, list):
            raise WireError(f"{where}: a tuple needs a list")
        return tuple(decode(v, special, f"{where}[{i}]", _depth + 1) for i, v in enumerate(payload))
    if marker == "__dict__":
        if not isinstance(payload, dict):
            raise WireError(f"{where}: a dict needs an object")
        return {k: decode(v, special, f"{where}[{k!r}]", _depth + 1) for k, v in payload.items()}
    if marker == "__array__":
        return decode_array(payload, where)
    return special(marker, payload, where)
