"""Value classes without the `dataclasses` module, so that a launch stays quick.

`import dataclasses` pulls in `inspect` (with ast, dis, tokenize, linecache), and making each dataclass runs
its code generator and `inspect.signature`; for the ~25 value classes a launch touches that was a fifth of
pyvmm's start-up. `record` makes the same kind of class from the annotated fields in declaration order
(defaults from the class body, `field()` for a factory or for leaving a field out of == and repr), with
`__init__`, `__repr__`, `__eq__`, `__hash__` when frozen, optional `__slots__`, and a call of `__post_init__`
when the class has one. Only `__init__` is generated source (so that making an instance costs what a
hand-written one does), and it is compiled when the first instance is made.

What it leaves out of the dataclasses feature set: inheritance of fields, ClassVar, InitVar, ordering,
keyword-only fields, `__match_args__`. `fields()` and `replace()` work as their dataclasses namesakes.
"""

from __future__ import annotations

from operator import attrgetter

_MISSING = object()


class FrozenRecordError(AttributeError):
    """Assigning to a field of a frozen record (dataclasses raises FrozenInstanceError, also an AttributeError)."""


class Field:
    """One field: its name, default (or default factory), and whether == and repr look at it."""

    __slots__ = ("name", "default", "default_factory", "compare", "repr")

    def __init__(self, default=_MISSING, default_factory=_MISSING, compare: bool = True, repr: bool = True) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default=_MISSING, default_factory=_MISSING, compare: bool = True, repr: bool = True):
    """A field with a default factory (a fresh list or dict per instance), or left out of == or repr."""
    return Field(default, default_factory, compare, repr)


def fields(obj_or_cls) -> tuple[Field, ...]:
    """The record's fields in declaration order."""
    return obj_or_cls.__record_fields__


def replace(obj, **changes):
    """A copy of obj with some fields changed (through __init__, so __post_init__ checks run again)."""
    values = {f.name: getattr(obj, f.name) for f in obj.__record_fields__}
    unknown = changes.keys() - values.keys()
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


def _frozen_setattr(self, name, value):
    raise FrozenRecordError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self, name):
    raise FrozenRecordError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def record(cls=None, *, frozen: bool = False, slots: bool = False, eq: bool = True):
    """Class decorator: `@record` or `@record(frozen=True, slots=True)`."""
    if cls is None:
        return lambda c: _make(c, frozen, slots, eq)
    return _make(cls, frozen, slots, eq)


def _make(cls: type, frozen: bool, slots: bool, eq: bool) -> type:
    body = dict(cls.__dict__)
    fs: list[Field] = []
    for name in body.get("__annotations__", {}):
        value = body.pop(name, _MISSING) if slots else body.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        if fs and f.default is _MISSING and f.default_factory is _MISSING and (
                fs[-1].default is not _MISSING or fs[-1].default_factory is not _MISSING):
            raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with a default")
        if isinstance(value, Field) and not slots:
            if f.default is _MISSING:
                body.pop(name, None)
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        fs.append(f)
    fields_ = tuple(fs)
    shown = attrgetter(*(f.name for f in fs if f.repr)) if any(f.repr for f in fs) else None
    compared = [f.name for f in fs if f.compare]
    key = (lambda self: tuple(getattr(self, n) for n in compared)) if len(compared) != 1 else attrgetter(*compared)
    names = [f.name for f in fs if f.repr]

    def __repr__(self) -> str:
        values = shown(self) if shown is not None else ()
        values = values if len(names) != 1 else (values,)
        return f"{type(self).__qualname__}({', '.join(f'{n}={v!r}' for n, v in zip(names, values))})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)

    def __hash__(self) -> int:
        return hash(key(self))

    def __init__(self, *args, **kwargs) -> None:     # compiled on first use: most classes are never made twice
        init = _compile_init(cls.__qualname__, fields_, frozen, "__post_init__" in body)
        type(self).__init__ = init
        init(self, *args, **kwargs)

    methods: dict[str, object] = {"__init__": __init__, "__repr__": __repr__}
    if eq:
        methods["__eq__"] = __eq__
        methods["__hash__"] = __hash__ if frozen else None
    if frozen:
        methods["__setattr__"] = _frozen_setattr
        methods["__delattr__"] = _frozen_delattr
    methods = {k: v for k, v in methods.items() if k not in body or (k == "__hash__" and "__eq__" not in body)}
    for fn in methods.values():
        if fn is not None:
            fn.__qualname__ = f"{cls.__qualname__}.{fn.__name__}"
    if slots:
        body.pop("__dict__", None)
        body.pop("__weakref__", None)
        body["__slots__"] = tuple(f.name for f in fs)
        body.update(methods)
        body["__record_fields__"] = fields_
        cls = type(cls)(cls.__name__, cls.__bases__, body)
        return cls
    for k, v in methods.items():
        setattr(cls, k, v)
    cls.__record_fields__ = fields_
    return cls


def _compile_init(qualname: str, fs: tuple[Field, ...], frozen: bool, post_init: bool):
    """The class's real __init__, from generated source: as fast to call as a hand-written one."""
    env: dict[str, object] = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, lines = [], []
    for i, f in enumerate(fs):
        if f.default_factory is not _MISSING:
            env[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            value = f"_f{i}() if {f.name} is _MISSING else {f.name}"
        elif f.default is not _MISSING:
            env[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
            value = f.name
        else:
            params.append(f.name)
            value = f.name
        lines.append(f"  _set(self, {f.name!r}, {value})" if frozen else f"  self.{f.name} = {value}")
    if post_init:
        lines.append("  self.__post_init__()")
    exec("\n".join([f"def __init__(self, {', '.join(params)}):", *(lines or ["  pass"])]), env)  # noqa: S102
    init = env["__init__"]
    init.__qualname__ = f"{qualname}.__init__"
    return init
