"""Handles on what lives in the student's kernel: call it from the harness, get plain data back.

A hidden test receives, for each name it declares, what :meth:`Student.lookup` gives: None where
the notebook does not define the name, a :class:`Remote` where it is callable, its value (decoded
from plain data) otherwise. Calling a :class:`Remote` sends the arguments to the kernel
(:mod:`gradkit_grader.wire`), calls the student's function there and decodes what it returned:

* arrays come back as NumPy arrays and backend tensors as tensors of the harness's backend;
* a Keras model comes back rebuilt from its JSON config in Keras' safe mode, with its weights; an
  optimizer, initializer or layer from its config (``deserialize_keras_object``, safe mode), so a
  test trains the harness's own copy;
* a symbolic input (``keras.Input``) passed as an argument makes the kernel build the model from
  that input to what the function returned; the harness rebuilds it and clones its layers onto
  its own input, so the caller gets the output tensor it would have got in process;
* a dataclass instance or named tuple comes back as a :class:`Record` with its fields as
  attributes; a function as another :class:`Remote`; anything else as an :class:`Opaque` handle.
  Records and handles have types named like the original (``type(x).__name__`` reads the same in
  messages).

An exception in the student's function arrives as :class:`StudentRaised` (type name and message,
no object); a time limit as :class:`gradkit_grader.kernel.KernelTimeout`.
"""
from __future__ import annotations

import base64
import sys
from typing import Any, Mapping

from gradkit_grader import wire
from gradkit_grader.kernel import KernelSession

__all__ = ["Remote", "Opaque", "Record", "Student", "StudentRaised", "same_object"]

_MIME = "application/x.gradkit-rpc+json"


class StudentRaised(Exception):
    """The student's code raised ``type_name``: ``message`` (only the text crosses)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name, self.message = type_name, message


class Opaque:
    """An object that stays in the kernel (what the harness cannot rebuild)."""

    def __init__(self, ref: int, type_name: str, module: str, text: str):
        self._gradkit_ref, self.module, self.text = ref, module, text

    def __repr__(self) -> str:
        return self.text


class Record:
    """A dataclass instance or named tuple of the kernel, as its fields (attributes of this object)."""

    def __init__(self, ref: int, fields: dict[str, Any]):
        self._gradkit_ref = ref
        self._fields = tuple(fields)
        for k, v in fields.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r:.40}" for k in self._fields)
        return f"{type(self).__name__}({inner})"


def _named(type_name: str, base: type) -> type:
    safe = type_name.rsplit(".", 1)[-1]
    return type(safe if safe.replace("_", "").isalnum() else "object", (base,), {})


def _opaque(ref: int, type_name: str, module: str, text: str) -> Opaque:
    return _named(type_name, Opaque)(ref, type_name, module, text)


def same_object(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same object in the kernel (or, in process, the same object)."""
    ra, rb = getattr(a, "_gradkit_ref", None), getattr(b, "_gradkit_ref", None)
    if ra is not None or rb is not None:
        return ra == rb
    return a is b


class Student:
    """The student's kernel as the hidden tests see it (one per submission)."""

    def __init__(self, session: KernelSession):
        self.session = session
        self._canonical: dict[Any, bytes] = {}
        #: what the student's code did that a reader of the grade should know ("relu raised SystemExit")
        self.notes: list[str] = []

    def request(self, req: dict, *, timeout_s: float | None = None, what: str = "a request") -> Any:
        reply = self.session.request(req, timeout_s=timeout_s, when=f"running {what}", mime=_MIME)
        if not isinstance(reply, dict) or len(reply) != 1 or next(iter(reply)) not in ("ok", "error"):
            raise wire.WireError(f"answer to {what}: neither ok nor error")
        if "error" in reply:
            err = reply["error"]
            if not isinstance(err, dict):
                raise wire.WireError(f"answer to {what}: a malformed error")
            if err.get("type") in ("SystemExit", "KeyboardInterrupt") and not self.session.gone:
                note = f"{what.removeprefix('running ')} raised {err['type']}"
                if note not in self.notes:
                    self.notes.append(note)
            raise StudentRaised(str(err.get("type", "Exception"))[:100], str(err.get("message", ""))[:2000])
        return reply["ok"]

    def lookup(self, names: list[str]) -> dict[str, Any]:
        """``{name: None | Remote | value}`` for the names a test declares."""
        found = self.request({"op": "lookup", "names": list(names)}, timeout_s=60, what="a lookup of names")
        if not isinstance(found, dict) or set(found) != set(names):
            raise wire.WireError("answer to a lookup: not an object with one entry per name")
        out = {}
        for name in names:
            entry = found.get(name)
            if entry is None:
                out[name] = None
            elif isinstance(entry, dict) and entry.get("kind") == "callable" and isinstance(entry.get("ref"), int):
                out[name] = Remote(self, entry["ref"], name)
            elif isinstance(entry, dict) and entry.get("kind") == "value":
                out[name] = self.decode(entry.get("value"), where=name)
            else:
                raise wire.WireError(f"answer to a lookup of {name!r}: malformed")
        return out

    def canonical(self, remote: "Remote") -> bytes:
        if remote.ref not in self._canonical:
            got = self.request({"op": "canonical", "target": {"ref": remote.ref}}, timeout_s=60,
                               what=f"reading the code of {remote.__name__}")
            if not isinstance(got, dict) or not isinstance(got.get("bytes"), str):
                raise wire.WireError("answer to a code request: malformed")
            self._canonical[remote.ref] = base64.b64decode(got["bytes"], validate=True)
        return self._canonical[remote.ref]

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, value: Any) -> Any:
        keras = sys.modules.get("keras")  # not imported here: no Keras object to send

        def special(x: Any) -> dict | None:
            if isinstance(x, Remote):
                return {"__ref__": {"ref": x.ref}}
            if isinstance(x, (Opaque, Record)):
                return {"__ref__": {"ref": x._gradkit_ref}}
            if keras is None:
                return None
            if isinstance(x, keras.KerasTensor):
                return {"__symbolic__": {"shape": list(x.shape[1:]), "dtype": str(x.dtype)}}
            if isinstance(x, keras.Model):
                if getattr(x, "_gradkit_ref", None) is not None:
                    return {"__model__": {"json": "", "weights": [], "ref": x._gradkit_ref}}
                return {"__model__": {"json": x.to_json(),
                                      "weights": [wire.encode_array(w) for w in x.get_weights()], "ref": None}}
            if isinstance(x, (keras.optimizers.Optimizer, keras.initializers.Initializer, keras.layers.Layer)):
                return {"__keras__": {"config": keras.saving.serialize_keras_object(x), "ref": None}}
            if isinstance(x, keras.Variable) or keras.ops.is_tensor(x):
                return {"__tensor__": {"__array__": wire.encode_array(keras.ops.convert_to_numpy(x))}}
            return None

        return wire.encode(value, special)

    def decode(self, data: Any, where: str = "value") -> Any:
        def special(marker: str, payload: Any, at: str) -> Any:
            if marker in ("__tensor__", "__keras__"):
                import keras  # only an assignment that uses Keras gets these (importing costs seconds)
            if marker == "__tensor__":
                if not isinstance(payload, dict) or set(payload) != {"__array__"}:
                    raise wire.WireError(f"{at}: a tensor needs an array")
                return keras.ops.convert_to_tensor(wire.decode_array(payload["__array__"], at))
            if marker == "__model__":
                return self._model(payload, at)
            if marker == "__keras__":
                if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
                    raise wire.WireError(f"{at}: a Keras object needs a config")
                try:
                    obj = keras.saving.deserialize_keras_object(payload["config"], safe_mode=True)
                except Exception as exc:  # noqa: BLE001 - unknown classes, bad configs
                    name = payload["config"].get("class_name", "object")
                    return _opaque(_ref(payload, at), str(name), str(payload["config"].get("module", "")),
                                   f"<{name} the grader cannot rebuild: {type(exc).__name__}: {exc}>"[:300])
                _tag(obj, _ref(payload, at))
                return obj
            if marker == "__callable__":
                if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
                    raise wire.WireError(f"{at}: a callable needs a name")
                return Remote(self, _ref(payload, at), payload["name"][:100])
            if marker == "__record__":
                if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) \
                        or not isinstance(payload.get("fields"), dict) \
                        or not all(k.isidentifier() and not k.startswith("_") for k in payload["fields"]):
                    raise wire.WireError(f"{at}: malformed record")
                fields = {k: self.decode(v, f"{at}.{k}") for k, v in payload["fields"].items()}
                return _named(payload["type"][:100], Record)(_ref(payload, at), fields)
            if marker == "__opaque__":
                if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str)
                                                            for k in ("type", "module", "repr")):
                    raise wire.WireError(f"{at}: malformed opaque object")
                return _opaque(_ref(payload, at), payload["type"][:100], payload["module"][:100],
                               payload["repr"][:300])
            raise wire.WireError(f"{at}: {marker} cannot come from the kernel")

        return wire.decode(data, special, where)

    def _model(self, payload: Any, at: str) -> Any:
        import keras

        if not isinstance(payload, dict) or not isinstance(payload.get("json"), str) \
                or not isinstance(payload.get("weights"), list):
            raise wire.WireError(f"{at}: a model needs json and weights")
        try:
            model = keras.models.model_from_json(payload["json"])
            model.set_weights([wire.decode_array(w, f"{at} weight {i}") for i, w in enumerate(payload["weights"])])
        except wire.WireError:
            raise
        except Exception as exc:  # noqa: BLE001 - Lambda layers, custom classes, mismatched weights
            raise StudentRaised("ValueError", "the model your function built cannot be rebuilt by the grader "
                                f"({type(exc).__name__}: {str(exc)[:300]}); build it from Keras' own layers, "
                                "without Lambda layers or classes of your own") from None
        _tag(model, _ref(payload, at))
        return model


def _ref(payload: dict, at: str) -> int:
    ref = payload.get("ref")
    if not isinstance(ref, int) or isinstance(ref, bool):
        raise wire.WireError(f"{at}: a handle needs an integer ref")
    return ref


def _tag(obj: Any, ref: int) -> None:
    try:
        obj._gradkit_ref = ref
    except (AttributeError, TypeError):
        pass


class Remote:
    """A callable that lives in the kernel; calling it calls the student's code there."""

    def __init__(self, student: Student, ref: int, name: str):
        self.student, self.ref, self.__name__ = student, ref, name
        self.__qualname__ = name

    def __repr__(self) -> str:
        return f"<student's {self.__name__}>"

    def __gradkit_canonical__(self) -> bytes:
        return self.student.canonical(self)

    def call(self, *args: Any, timeout_s: float | None = None, forbid: Mapping[str, Any] | None = None,
             **kwargs: Any) -> Any:
        keras = sys.modules.get("keras")
        symbolic = [] if keras is None else [a for a in [*args, *kwargs.values()] if isinstance(a, keras.KerasTensor)]
        req = {"op": "call", "target": {"ref": self.ref}, "args": self.student.encode(list(args)),
               "kwargs": self.student.encode(dict(kwargs))}
        forbid = self._forbid(req, forbid)
        out = self.student.decode(self._request(req, timeout_s, self.__name__, forbid),
                                  where=f"what {self.__name__} returned")
        if not symbolic:
            return out
        if not isinstance(out, keras.Model):
            raise StudentRaised("TypeError", f"{self.__name__} did not return a Keras tensor")
        cloned = keras.models.clone_model(out, input_tensors=symbolic if len(symbolic) > 1 else symbolic[0])
        cloned.set_weights(out.get_weights())
        return cloned.outputs[0] if len(cloned.outputs) == 1 else cloned.outputs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    def __gradkit_call__(self, args: tuple, kwargs: dict, *, timeout_s: float, what: str,
                         forbid: Mapping[str, Any] | None = None) -> Any:
        """:func:`gradkit.guard.student_call` of this handle: what the student's code did wrong in the
        kernel (raised, exited, ran past ``timeout_s``, killed its kernel, called what ``forbid``
        forbids: :mod:`gradkit.forbid`) as an ``AssertionError``."""
        from gradkit.guard import StudentTimeout
        from gradkit_grader.kernel import KernelGone, KernelTimeout

        try:
            return self.call(*args, timeout_s=timeout_s, forbid=forbid, **kwargs)
        except KernelTimeout:
            raise StudentTimeout(f"timeout after {timeout_s:g} s in {what}") from None
        except KernelGone as exc:
            raise AssertionError(f"{what} could not run: {exc}") from None
        except StudentRaised as exc:
            if exc.type_name in ("SystemExit", "KeyboardInterrupt"):
                raise AssertionError(f"{what} raised {exc.type_name}; "
                                     "do not exit or interrupt inside graded code") from None
            if exc.type_name == "AssertionError":
                raise AssertionError(exc.message or f"{what} raised AssertionError") from None
            raise AssertionError(f"{what} raised {exc}") from None

    def gradient(self, x: Any, *, timeout_s: float | None = None, forbid: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> Any:
        """d/dx of ``sum(self(x, **kwargs))`` at ``x``, by autodiff in the kernel
        (:func:`gradkit_grader.autodiff.input_gradient`); under ``forbid``'s tracer when given."""
        req = {"op": "grad", "target": {"ref": self.ref}, "x": self.student.encode(x),
               "kwargs": self.student.encode(dict(kwargs))}
        forbid = self._forbid(req, forbid)
        what = f"the gradient of {self.__name__}"
        return self.student.decode(self._request(req, timeout_s, what, forbid), where=what)

    def _forbid(self, req: dict, forbid: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Put the stub's forbidden calls (``forbid``, else the rule of this handle's name set by
        :func:`gradkit.forbid.forbidding`) into ``req``: the kernel runs it under the tracer."""
        from gradkit.forbid import rule_for

        forbid = forbid if forbid is not None else rule_for(self.__name__)
        if forbid:
            req["forbid"] = {"calls": [str(c) for c in forbid.get("calls", ())],
                             "direct": [str(c) for c in forbid.get("direct", ())]}
        return forbid

    def _request(self, req: dict, timeout_s: float | None, what: str, forbid: Mapping[str, Any] | None) -> Any:
        try:
            return self.student.request(req, timeout_s=timeout_s, what=what)
        except StudentRaised as exc:
            if exc.type_name == "ForbiddenCall" and forbid:
                from gradkit.forbid import message

                raise AssertionError(message(self.__name__, exc.message.split("\n")[:20], forbid)) from None
            raise
