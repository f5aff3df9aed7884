"""Load plans for flat binaries (raw code images): the simplest guests, used by tests and benchmarks."""

from __future__ import annotations

from .errors import LoadError
from .plan import LoadPlan, MemoryWrite
from .x86 import flat_gdt, identity_page_tables, long_mode_state, page_table_size, real_mode_state

GDT_GPA = 0x500
PAGE_TABLES_GPA = 0x9000
LONG_LOAD_GPA = 0x100000
REAL_LOAD_GPA = 0x8000


def flat_plan(image: bytes, mode: str = "long", load_addr: int | None = None, entry: int | None = None,
              cpus: int = 1, stack_top: int = 0x80000) -> LoadPlan:
    """Place `image` at load_addr and start every vCPU at its entry, in real mode or 64-bit long mode.

    In long mode each vCPU gets its own stack (stack_top - i * 0x1000) and RDI = vCPU index, so one image can
    run on several processors at once.
    """
    if mode not in ("long", "real"):
        raise LoadError(f"unknown flat-binary mode {mode!r} (use 'long' or 'real')")
    if load_addr is None:
        load_addr = LONG_LOAD_GPA if mode == "long" else REAL_LOAD_GPA
    if entry is None:
        entry = load_addr
    if not image:
        raise LoadError("flat binary is empty")
    if not load_addr <= entry < load_addr + len(image):
        raise LoadError(f"entry {entry:#x} lies outside the image [{load_addr:#x}, {load_addr + len(image):#x})")
    plan = LoadPlan(writes=[MemoryWrite(load_addr, bytes(image), "flat image")])
    if mode == "real":
        if load_addr + len(image) > 0x100000:
            raise LoadError("a real-mode image must end below 1 MiB")
        for i in range(cpus):
            plan.vps[i] = real_mode_state(entry)
            plan.vps[i].regs["rdi"] = i
        return plan
    gdt, _ = flat_gdt()
    tables_end = PAGE_TABLES_GPA + page_table_size()
    if load_addr < tables_end and load_addr + len(image) > GDT_GPA:
        raise LoadError(f"image at {load_addr:#x} overlaps the boot GDT/page tables below {tables_end:#x}")
    plan.writes.insert(0, MemoryWrite(GDT_GPA, gdt, "GDT"))
    plan.writes.insert(1, MemoryWrite(PAGE_TABLES_GPA, identity_page_tables(PAGE_TABLES_GPA), "page tables"))
    for i in range(cpus):
        vp = long_mode_state(entry, PAGE_TABLES_GPA, GDT_GPA, stack=stack_top - i * 0x1000)
        vp.regs["rdi"] = i
        plan.vps[i] = vp
    return plan
