"""loaders.named: the constants that replace IntEnum on the launch path behave as IntEnum did where pyvmm uses it."""

from __future__ import annotations

import copy

import pytest

from loaders.igvm.constants import HeaderType, Platform
from loaders.named import Named


class Color(Named):
    RED = 1
    GREEN = 2
    CRIMSON = 1          # an alias
    lower = 3            # not a member


def test_members_are_ints_with_names():
    assert Color.RED == 1 and isinstance(Color.RED, int) and isinstance(Color.RED, Color)
    assert Color.RED.name == "RED" and Color.RED.value == 1
    assert hash(Color.GREEN) == hash(2) and {2: "x"}[Color.GREEN] == "x"
    assert Color.CRIMSON is Color.RED
    assert Color.lower == 3 and not isinstance(Color.lower, Color)


def test_lookup_iteration_repr_str_and_format():
    assert Color(2) is Color.GREEN
    with pytest.raises(ValueError, match="7 is not a valid Color"):
        Color(7)
    assert Color["GREEN"] is Color.GREEN and Color["CRIMSON"] is Color.RED
    with pytest.raises(KeyError):
        Color["lower"]
    assert list(Color) == [Color.RED, Color.GREEN] and len(Color) == 2
    assert repr(Color.GREEN) == "<Color.GREEN: 2>"
    assert str(Color.GREEN) == "2" and f"{Color.GREEN:#x}" == "0x2"
    assert copy.copy(Color.GREEN) is Color.GREEN
    assert (Color.RED | Color.GREEN) == 3


def test_the_igvm_constants_keep_their_names_and_values():
    assert HeaderType(0x302) is HeaderType.PAGE_DATA and HeaderType.PAGE_DATA.name == "PAGE_DATA"
    assert Platform.NATIVE.name == "NATIVE" and Platform(0x01) is Platform.VSM_ISOLATION
