"""loaders.record: the value classes that replace dataclasses on the launch path behave as dataclasses did."""

from __future__ import annotations

import pytest

from loaders.record import field, fields, record, replace


@record(frozen=True, slots=True)
class Point:
    x: int
    y: int = 2
    tag: str = field(default="t", compare=False, repr=False)


@record
class Bag:
    name: str
    items: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("empty name")


def test_init_defaults_repr_and_field_order():
    p = Point(1)
    assert (p.x, p.y, p.tag) == (1, 2, "t")
    assert repr(p) == "Point(x=1, y=2)"
    assert [f.name for f in fields(p)] == ["x", "y", "tag"]
    assert Point(1, y=5, tag="u").y == 5


def test_frozen_slots_eq_and_hash_ignore_uncompared_fields():
    assert Point(1, 2, "a") == Point(1, 2, "b")
    assert hash(Point(1, 2, "a")) == hash(Point(1, 2, "b"))
    assert Point(1, 2) != Point(1, 3)
    assert Point(1) != (1, 2)
    with pytest.raises(AttributeError):
        Point(1).x = 3
    assert not hasattr(Point(1), "__dict__")


def test_mutable_record_factory_post_init_and_replace():
    a, b = Bag("a"), Bag("b")
    a.items.append(1)
    assert b.items == []
    assert Bag("a", [1]) == a
    with pytest.raises(TypeError):
        hash(a)
    with pytest.raises(ValueError, match="empty name"):
        Bag("")
    assert replace(a, name="c") == Bag("c", [1])
    with pytest.raises(ValueError):
        replace(a, name="")
    with pytest.raises(TypeError, match="no field 'nope'"):
        replace(a, nope=1)


def test_a_required_field_after_a_default_is_refused():
    with pytest.raises(TypeError, match="without a default"):
        @record
        class Bad:
            a: int = 1
            b: int
