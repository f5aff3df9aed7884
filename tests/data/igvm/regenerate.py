"""Regenerate the golden IGVM files in this folder from the models in tests/igvm_samples.py.

Run: python tests/data/igvm/regenerate.py   (the test suite checks the files are what this writes)
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from loaders.igvm import write_igvm  # noqa: E402
from tests.igvm_samples import multi_platform, vector_a, vector_b, with_area_initial_data  # noqa: E402

GOLDEN = {"vector-a.igvm": vector_a, "vector-b.igvm": vector_b, "multi-platform.igvm": multi_platform,
          "area-initial-data.igvm": with_area_initial_data}

if __name__ == "__main__":
    for name, make in GOLDEN.items():
        (HERE / name).write_bytes(write_igvm(make()))
        print("wrote", HERE / name)
    from vmm.cli import main  # the JSON dump golden, through the command users run
    import contextlib
    with open(HERE / "multi-platform.json", "w") as out, contextlib.redirect_stdout(out):
        main(["igvm", "dump", str(HERE / "multi-platform.igvm"), "--json"])
