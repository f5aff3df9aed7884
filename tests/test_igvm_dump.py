"""Golden IGVM files and `pyvmm igvm dump`: the files still read as written, the dump is stable."""

import json
from pathlib import Path

import pytest

from loaders.igvm import read_igvm, write_igvm
from tests.data.igvm.regenerate import GOLDEN
from vmm.cli import main

DATA = Path(__file__).resolve().parent / "data" / "igvm"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_files_match_the_writer_and_read_back(name):
    raw = (DATA / name).read_bytes()
    assert write_igvm(GOLDEN[name]()) == raw, "writer output changed: run tests/data/igvm/regenerate.py"
    assert read_igvm(raw) == GOLDEN[name]()


def test_json_dump_is_stable(capsys):
    assert main(["igvm", "dump", str(DATA / "multi-platform.igvm"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads((DATA / "multi-platform.json").read_text())
    assert out["schema"] == "pyvmm-igvm-dump/1"
    t = out["totals"]
    assert t["headers"] == len(out["platforms"]) + len(out["initialization"]) + len(out["directives"]) + t["page_data"]
    assert t["page_data"] == sum(r["pages"] for r in out["page_ranges"]) and t["vp_contexts"] == 3
    ranges = out["page_ranges"]
    assert ranges[0]["first_gpa"] == 0x100000 and ranges[0]["pages"] == 3
    assert ranges[1]["zero_pages"] == 2
    ctx = [d for d in out["directives"] if d["type"] == "VP_CONTEXT" and d["platform"] == "NATIVE"][0]
    assert ctx["registers"]["rip"] == 0x100000 and ctx["registers"]["r12"] == 0x709000


def test_table_dump_shows_every_header_kind(capsys):
    assert main(["igvm", "dump", str(DATA / "multi-platform.igvm")]) == 0
    out = capsys.readouterr().out
    for word in ("SUPPORTED_PLATFORM", "GUEST_POLICY", "PARAMETER_AREA", "VP_COUNT_PARAMETER", "SNP_ID_BLOCK",
                 "VBS_MEASUREMENT", "VP_CONTEXT", "REQUIRED_MEMORY", "0x100000-0x103000"):
        assert word in out


@pytest.mark.parametrize("content,words", [(b"xx", "shorter than"), (b"IGVM" + bytes(40), "format version 0")])
def test_bad_files_exit_2_with_one_line(tmp_path, capsys, content, words):
    f = tmp_path / "bad.igvm"
    f.write_bytes(content)
    assert main(["igvm", "dump", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and str(f) in err


def test_missing_file_and_usage(capsys):
    assert main(["igvm", "dump", "/nonexistent.igvm"]) == 2
    assert "cannot read /nonexistent.igvm" in capsys.readouterr().err
    assert main(["igvm"]) == 2
    assert main(["igvm", "frobnicate"]) == 2
