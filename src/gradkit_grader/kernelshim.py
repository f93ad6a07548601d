"""The kernel's end of the harness protocol: sent to the student's kernel as source text.

The harness (:mod:`gradkit_grader.harness`) never imports this module into a kernel: it sends this
file's text, runs ``__gradkit_rpc__ = install(...)`` there, and from then on executes
``__gradkit_rpc__('<request JSON>')`` once per request. It imports nothing but the standard library,
NumPy and Keras, which every student environment has. Each request is answered with one display
message of type :data:`MIME` holding ``{"ok": <value>}`` or ``{"error": {type, message, traceback}}``
(:mod:`gradkit_grader.wire` has the value format).

Whatever the student's code does to this code, its names or the libraries it uses changes only
what the kernel answers: the harness checks every answer as data from an untrusted source.
Requests (``op``):

``call``      call the name or handle ``target`` with ``args`` / ``kwargs`` (with ``forbid``, under
              ``traced_call`` of :mod:`gradkit.forbid`, sent along: a ``ForbiddenCall`` error names
              what the rule forbids and the call made);
``lookup``    ``{name: "callable" | "value" | null}`` for ``names``, and the values of non-callables;
``canonical`` the bytes the per-submission seed is derived from (``_canonical`` of
              :mod:`gradkit_grader.seeding`, whose source the harness sends along);
``grad``      the gradient of ``sum(target(x, **kwargs))`` at ``x`` (``backend_gradient`` of
              :mod:`gradkit_grader.autodiff`, sent along too).
"""

MIME = "application/x.gradkit-rpc+json"


def install(user_ns, canonical, publish, gradient, traced):  # noqa: C901 - one closure, sent as text
    """Return the request handler bound to the kernel's namespace ``user_ns``."""
    import base64
    import dataclasses
    import json
    import sys
    import traceback

    import numpy as np

    class ForbiddenCall(Exception):
        """The call made one a rule forbids; the message lists their names, one per line."""

    refs = {}
    tokens = {}
    dtypes = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "complex64", "complex128"}

    def keep(obj):
        key = id(obj)
        if key not in tokens:
            tokens[key] = len(refs) + 1
            refs[tokens[key]] = obj
        return tokens[key]

    def arr(a, scalar=False):
        a = np.asarray(a, order="C")
        if a.dtype.name not in dtypes:
            a = a.astype(np.float64) if a.dtype.kind in "fiub" else None
        if a is None:
            return None
        return {"dtype": a.dtype.name, "shape": list(a.shape),
                "data": base64.b64encode(a.tobytes()).decode("ascii"), "scalar": scalar}

    def opaque(x):
        try:
            text = repr(x)[:300]
        except BaseException:  # noqa: BLE001 - a student's __repr__ may raise anything
            text = "<unprintable>"
        return {"__opaque__": {"ref": keep(x), "type": type(x).__qualname__, "module": type(x).__module__,
                               "repr": text}}

    def record(x, fields, depth):
        return {"__record__": {"ref": keep(x), "type": type(x).__qualname__, "module": type(x).__module__,
                               "fields": {str(k): enc(v, depth + 1) for k, v in fields.items()}}}

    def enc(x, depth=0):
        keras = sys.modules.get("keras")  # not imported: no Keras object can exist (and importing costs seconds)

        if depth > 32:
            return opaque(x)
        if isinstance(x, np.generic):  # before float: np.float64 is one
            a = arr(np.asarray(x), scalar=True)
            return {"__array__": a} if a else opaque(x)
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return x
        if isinstance(x, float):
            return x if np.isfinite(x) else {"__float__": repr(x)}
        if isinstance(x, np.ndarray):
            a = arr(x)
            return {"__array__": a} if a else opaque(x)
        if isinstance(x, list):
            return [enc(v, depth + 1) for v in x]
        if isinstance(x, tuple) and isinstance(getattr(type(x), "_fields", None), tuple):  # a namedtuple
            return record(x, {f: getattr(x, f) for f in type(x)._fields}, depth)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return record(x, {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}, depth)
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v, depth + 1) for v in x]}
        if isinstance(x, dict) and all(isinstance(k, str) for k in x):
            return {"__dict__": {k: enc(v, depth + 1) for k, v in x.items()}}
        if keras is None:
            return {"__callable__": {"ref": keep(x), "name": str(getattr(x, "__qualname__", type(x).__name__))}} \
                if callable(x) else opaque(x)
        if isinstance(x, keras.KerasTensor):
            return opaque(x)
        if isinstance(x, keras.Variable) or keras.ops.is_tensor(x):
            a = arr(keras.ops.convert_to_numpy(x))
            return {"__tensor__": {"__array__": a}} if a else opaque(x)
        if isinstance(x, keras.Model):
            try:
                return {"__model__": {"json": x.to_json(), "weights": [arr(w) for w in x.get_weights()],
                                      "ref": keep(x)}}
            except Exception:  # noqa: BLE001 - a model Keras cannot describe stays in the kernel
                return opaque(x)
        if isinstance(x, (keras.optimizers.Optimizer, keras.initializers.Initializer, keras.layers.Layer,
                          keras.losses.Loss, keras.regularizers.Regularizer)):
            try:
                config = keras.saving.serialize_keras_object(x)
                json.dumps(config)
                return {"__keras__": {"config": config, "ref": keep(x)}}
            except Exception:  # noqa: BLE001
                return opaque(x)
        if callable(x):
            return {"__callable__": {"ref": keep(x), "name": str(getattr(x, "__qualname__", type(x).__name__))}}
        return opaque(x)

    def dec(x, inputs):
        if isinstance(x, list):
            return [dec(v, inputs) for v in x]
        if not isinstance(x, dict):
            return x
        (marker, payload), = x.items()
        if marker == "__float__":
            return float(payload)
        if marker == "__tuple__":
            return tuple(dec(v, inputs) for v in payload)
        if marker == "__dict__":
            return {k: dec(v, inputs) for k, v in payload.items()}
        if marker == "__array__":
            a = np.frombuffer(base64.b64decode(payload["data"]), dtype=payload["dtype"])
            a = a.reshape(payload["shape"]).copy()
            return a[()] if payload["scalar"] else a
        if marker == "__ref__":
            return resolve(payload)
        import keras  # the harness sends the rest only where the assignment uses Keras

        if marker == "__tensor__":
            return keras.ops.convert_to_tensor(dec(payload, inputs))
        if marker == "__symbolic__":
            t = keras.Input(shape=tuple(payload["shape"]), dtype=payload["dtype"])
            inputs.append(t)
            return t
        if marker == "__model__":
            if payload.get("ref") in refs:
                return refs[payload["ref"]]
            model = keras.models.model_from_json(payload["json"])
            model.set_weights([dec({"__array__": w}, inputs) for w in payload["weights"]])
            return model
        if marker == "__keras__":
            return keras.saving.deserialize_keras_object(payload["config"])
        raise ValueError(f"unknown marker {marker}")

    def resolve(target):
        if isinstance(target, dict) and "ref" in target:
            return refs[target["ref"]]
        if target not in user_ns:
            raise NameError(f"name {target!r} is not defined")
        return user_ns[target]

    def run(req, fn, args, kwargs, home):
        # fn(*args, **kwargs), under the tracer when the request carries the stub's forbidden calls
        rule = req.get("forbid")
        if not rule:
            return fn(*args, **kwargs)
        result, called = traced(fn, args, kwargs, rule.get("calls", ()), rule.get("direct", ()), home)
        if called:
            raise ForbiddenCall("\n".join(called))
        return result

    def handle(req):
        op = req["op"]
        if op == "lookup":
            out = {}
            for name in req["names"]:
                if name not in user_ns:
                    out[name] = None
                elif callable(user_ns[name]):
                    out[name] = {"kind": "callable", "ref": keep(user_ns[name])}
                else:
                    out[name] = {"kind": "value", "value": enc(user_ns[name])}
            return out
        if op == "canonical":
            return {"bytes": base64.b64encode(canonical(resolve(req["target"]))).decode("ascii")}
        if op == "grad":
            x = dec(req["x"], [])
            fn = resolve(req["target"])
            g = run(req, gradient, (fn, x, dec(req["kwargs"], [])), {}, getattr(fn, "__globals__", None))
            return enc(np.asarray(g, dtype=np.float64))
        if op == "call":
            inputs = []
            fn = resolve(req["target"])
            args = dec(req["args"], inputs)
            kwargs = dec(req["kwargs"], inputs)
            result = run(req, fn, args, kwargs, getattr(fn, "__globals__", None))
            if not inputs:
                return enc(result)
            import keras

            model = keras.Model(inputs if len(inputs) > 1 else inputs[0], result)
            return enc(model)
        raise ValueError(f"unknown request {op!r}")

    def rpc(text):
        try:
            reply = {"ok": handle(json.loads(text))}
            payload = json.dumps(reply)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are answers too
            try:
                message = str(exc)[:2000]
            except BaseException:  # noqa: BLE001
                message = "<unprintable message>"
            payload = json.dumps({"error": {"type": type(exc).__name__, "message": message,
                                            "traceback": traceback.format_exc()[-3000:]}})
        publish({MIME: payload})

    return rpc
