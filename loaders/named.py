"""Named integer constants without the `enum` module, so that a launch stays quick.

`import enum` and making each IntEnum (its metaclass checks and records every member) cost several
milliseconds of a launch here, for constants a launch only compares and names in messages. A `Named`
subclass behaves as an IntEnum does where pyvmm uses one: its members are ints (equal to and hashed as
their value) with `.name` and `.value`, `Cls(value)` finds the member or raises ValueError (`Cls[name]`:
KeyError), `for m in Cls` lists the members in declaration order, a second name for a value is an alias of the first, and `repr` is
`<Cls.NAME: value>` while `str` and format give the number. Bitwise operators give plain ints (IntFlag would
make a combined member; nothing in pyvmm names a combination).
"""

from __future__ import annotations


class _NamedType(type):
    def __call__(cls, value: int) -> "Named":
        member = cls._value2member_map_.get(value)
        if member is None:
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}")
        return member

    def __getitem__(cls, name: str) -> "Named":
        member = vars(cls).get(name)
        if not isinstance(member, cls):
            raise KeyError(name)
        return member

    def __iter__(cls):
        return iter(cls._members)

    def __len__(cls) -> int:
        return len(cls._members)


class Named(int, metaclass=_NamedType):
    """Base class: every upper-case int attribute of a subclass becomes a member."""

    _value2member_map_: dict[int, "Named"] = {}
    _members: tuple["Named", ...] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        by_value: dict[int, Named] = {}
        members = []
        for name, value in list(vars(cls).items()):
            if name.isupper() and type(value) is int:
                member = by_value.get(value)
                if member is None:
                    member = int.__new__(cls, value)
                    member._name = name
                    by_value[value] = member
                    members.append(member)
                setattr(cls, name, member)
        cls._value2member_map_ = by_value
        cls._members = tuple(members)

    @property
    def name(self) -> str:
        return self._name

    @property
    def value(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__}.{self._name}: {int(self)}>"

    __str__ = int.__repr__
    __format__ = int.__format__

    def __reduce__(self):
        return type(self), (int(self),)
