"""The checks the loading unpickler makes on every import, call, instantiation and BUILD.

``find_class`` alone is not enough: the red-team chains called admitted functions with arguments
of the file's choosing. So the pure-Python unpickler (``pickle._Unpickler``, which joblib's
``NumpyUnpickler`` also is) runs with its REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ, BUILD and
container opcodes replaced by checked versions:

- an import resolves only an admitted name (:mod:`~core.safety.admitted`) or one the person
  trusted that
  trust may admit (:mod:`~core.safety.untrustable`); a reviewed reconstructor comes back
  wrapped so that
  its arguments are checked on every call, also when model code calls it later;
- REDUCE calls only an admitted class the record shows being called, a wrapped reconstructor,
  or a trusted name; NEWOBJ instantiates only an admitted class the record shows being created
  that way, or a trusted class. Anything else on the stack (an object the file built, a value
  such as ``numpy.mean``) is never called;
- BUILD gives state only to an object this load created by an admitted call, and never state
  with special (dunder) keys such as ``__array_interface__``, which would point numpy at memory
  by address;
- APPEND/SETITEM/ADDITEMS go only into lists, dicts and sets, never into arrays or models.
"""

from __future__ import annotations

import functools
import pickle
import re
from collections.abc import Callable
from typing import Any

from core.errors import UnsafeModel
from core.safety.admitted import admits_class, resolve_admitted
from core.safety.untrustable import why_never_trusted

_DUNDER = re.compile(r"^__\w+__$")


class Policy:
    """One load's view of what may be imported and how it may be used."""

    def __init__(self, trusted: frozenset[str], filename: str,
                 importer: Callable[[str, str], Any],
                 untrusted: Callable[[str], Exception]) -> None:
        """``importer`` imports a trusted name; ``untrusted`` makes the error for a name that
        is neither admitted nor trusted (or beyond trust)."""
        self.trusted, self.filename = trusted, filename
        self.importer, self.untrusted = importer, untrusted
        # id -> (kind, object, name, uses) of what find_class returned; the object is kept so
        # that its id is never reused during the load
        self.named: dict[int, tuple[str, Any, str]] = {}
        self.made: dict[int, Any] = {}  # objects created by an admitted call or instantiation

    def refuse(self, name: str, why: str) -> UnsafeModel:
        return UnsafeModel(f"{self.filename} {why}. A model file is a program; this one does "
                           "something no real model does, so it was stopped before it ran. Do "
                           "not use this file; save the model again from its training code.",
                           [name])

    def resolve(self, module: str, name: str) -> Any:
        """find_class: the object for an admitted or trusted name."""
        full = f"{module}.{name}"
        try:
            kind, obj, _admitted = resolve_admitted(full)
        except KeyError:
            if full not in self.trusted or why_never_trusted(full) is not None:
                raise self.untrusted(full) from None
            kind, obj = "trusted", self.importer(module, name)
        self.named[id(obj)] = (kind, obj, full)
        return obj

    def _origin(self, obj: Any) -> tuple[str, str] | None:
        entry = self.named.get(id(obj))
        return (entry[0], entry[2]) if entry is not None and entry[1] is obj else None

    def _made(self, obj: Any) -> Any:
        self.made[id(obj)] = obj
        return obj

    def call(self, func: Any, args: tuple[Any, ...]) -> Any:
        origin = self._origin(func)
        if origin is None:
            raise self.refuse(repr(type(func).__name__),
                              f"calls an object of type {type(func).__name__} that it built "
                              "itself; only admitted classes and reconstructors may be called")
        kind, name = origin
        if kind == "value":
            raise self.refuse(name, f"calls {name}, which models only keep as a value and the "
                                    "loader never calls")
        if kind == "class" and not admits_class(func, "call"):
            raise self.refuse(name, f"calls the class {name} with arguments, which no real "
                                    "model's file does")
        if func is functools.partial and args:
            self._bound(args[0])
        return self._made(func(*args))

    def _bound(self, target: Any) -> None:
        """functools.partial may bind only what the file imported as admitted or trusted."""
        if self._origin(target) is None:
            raise self.refuse("functools.partial", "binds functools.partial to an object of "
                              f"type {type(target).__name__} it built itself; partial may bind "
                              "only admitted names")

    def new(self, cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        origin = self._origin(cls)
        if origin is None or origin[0] not in ("class", "trusted") or not isinstance(cls, type):
            name = origin[1] if origin else type(cls).__name__
            raise self.refuse(name, f"creates an object from {name}, which is not an admitted "
                                    "class")
        if origin[0] == "class" and not admits_class(cls, "new"):
            raise self.refuse(origin[1], f"creates {origin[1]} without calling it, which no "
                                         "real model's file does")
        return self._made(cls.__new__(cls, *args, **kwargs))

    def build(self, inst: Any, state: Any) -> None:
        if isinstance(inst, type) or self.made.get(id(inst)) is not inst:
            raise self.refuse(type(inst).__name__,
                              f"sets the state of a {type(inst).__name__} it did not create "
                              "through an admitted class")
        if type(inst) is functools.partial and isinstance(state, tuple) and state:
            self._bound(state[0])
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        for part in (state, slots):
            if isinstance(part, dict):
                bad = [k for k in part if not isinstance(k, str) or _DUNDER.match(k)]
                if bad:
                    raise self.refuse(type(inst).__name__,
                                      f"gives a {type(inst).__name__} the special attribute "
                                      f"{bad[0]!r}, which no model has")

    def container(self, target: Any, kinds: tuple[type, ...], what: str) -> None:
        if not isinstance(target, kinds):
            raise self.refuse(type(target).__name__,
                              f"{what} into a {type(target).__name__}; only plain lists, dicts "
                              "and sets are filled while loading")


class GuardedMixin:
    """REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ, BUILD and container opcodes, checked.

    Mixed into a ``pickle._Unpickler`` subclass that sets ``self.policy``; its ``dispatch``
    must be updated with :data:`DISPATCH`."""

    policy: Policy
    stack: list[Any]

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self.policy.call(self.stack[-1], tuple(args))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.stack.append(self.policy.new(cls, tuple(args), {}))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.stack.append(self.policy.new(cls, tuple(args), dict(kwargs)))

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        if args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self.stack.append(self.policy.call(klass, tuple(args)))
        else:
            self.stack.append(self.policy.new(klass, (), {}))

    def load_build(self) -> None:
        self.policy.build(self.stack[-2], self.stack[-1])
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    def load_append(self) -> None:
        self.policy.container(self.stack[-2], (list,), "appends")
        pickle._Unpickler.load_append(self)  # type: ignore[attr-defined]

    def load_appends(self) -> None:
        self.policy.container(self.metastack[-1][-1], (list,), "appends")  # type: ignore[attr-defined]
        pickle._Unpickler.load_appends(self)  # type: ignore[attr-defined]

    def load_setitem(self) -> None:
        self.policy.container(self.stack[-3], (dict,), "sets items")
        pickle._Unpickler.load_setitem(self)  # type: ignore[attr-defined]

    def load_setitems(self) -> None:
        self.policy.container(self.metastack[-1][-1], (dict,), "sets items")  # type: ignore[attr-defined]
        pickle._Unpickler.load_setitems(self)  # type: ignore[attr-defined]

    def load_additems(self) -> None:
        self.policy.container(self.metastack[-1][-1], (set,), "adds items")  # type: ignore[attr-defined]
        pickle._Unpickler.load_additems(self)  # type: ignore[attr-defined]


DISPATCH = {
    pickle.REDUCE[0]: GuardedMixin.load_reduce,
    pickle.NEWOBJ[0]: GuardedMixin.load_newobj,
    pickle.NEWOBJ_EX[0]: GuardedMixin.load_newobj_ex,
    pickle.BUILD[0]: GuardedMixin.load_build,
    pickle.APPEND[0]: GuardedMixin.load_append,
    pickle.APPENDS[0]: GuardedMixin.load_appends,
    pickle.SETITEM[0]: GuardedMixin.load_setitem,
    pickle.SETITEMS[0]: GuardedMixin.load_setitems,
    pickle.ADDITEMS[0]: GuardedMixin.load_additems,
}
