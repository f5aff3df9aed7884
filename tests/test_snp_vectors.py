"""`pyvmm igvm measure` agrees with microsoft/igvm-tooling on every SEV-SNP file it built.

tests/data/snp_vectors/*.igvm.xz were written by igvmgen (bzImage, bzImage2 with a shared payload, and ELF
inputs; x86 and x64 boot modes; with and without -pvalidate_opt, -encrypted_page, initrd); vectors.json holds
the command and the launch digest igvmgen wrote with -measurement_file. make_vectors.py regenerates them.
"""

import json
import lzma
from pathlib import Path

import pytest

from vmm.cli import main

DATA = Path(__file__).resolve().parent / "data" / "snp_vectors"
VECTORS = {k: v for k, v in json.loads((DATA / "vectors.json").read_text()).items() if not k.startswith("_")}


def test_the_vectors_cover_the_igvmgen_modes():
    commands = " | ".join(v["command"] for v in VECTORS.values())
    for word in ("-boot_mode x86", "-boot_mode x64", "-pvalidate_opt false", "-encrypted_page true",
                 "-encrypted_page false", "-rdinit", "-shared_payload", "-inform elf", "-inform bzImage "):
        assert word in commands
    assert len(VECTORS) >= 10


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_launch_digest_equals_igvmgens(name, tmp_path, capsys):
    data = lzma.decompress((DATA / f"{name}.igvm.xz").read_bytes())
    assert len(data) == VECTORS[name]["file_size"]
    f = tmp_path / f"{name}.igvm"
    f.write_bytes(data)
    assert main(["igvm", "measure", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["digest"] == VECTORS[name]["launch_digest"]
    assert out["id_block"] == {"ld": VECTORS[name]["launch_digest"], "matches": True}
    assert out["records"]["vmsa"] == 1 and out["records"]["cpuid"] == 1 and out["records"]["secrets"] == 1
    if "-shared_payload" in VECTORS[name]["command"]:
        assert out["records"]["shared (not measured)"] == 2
    assert main(["igvm", "measure", str(f)]) == 0
    text = capsys.readouterr().out
    assert f"SEV_SNP launch digest (1 vCPU): {VECTORS[name]['launch_digest']}" in text
    assert "id block: matches" in text


def test_a_second_vcpu_changes_the_digest_and_the_id_block_then_differs(tmp_path, capsys):
    name = "bz-x64-enc"
    f = tmp_path / "f.igvm"
    f.write_bytes(lzma.decompress((DATA / f"{name}.igvm.xz").read_bytes()))
    assert main(["igvm", "measure", str(f), "-p", "2"]) == 0
    out = capsys.readouterr().out
    assert VECTORS[name]["launch_digest"] not in out.splitlines()[0]
    assert f"id block: differs, it says {VECTORS[name]['launch_digest']}" in out
