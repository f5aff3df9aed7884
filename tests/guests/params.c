/* Reads every IGVM parameter area the test packs (addresses come in as -D defines) and reports what it
   found over COM1, one line per parameter, verifying ACPI checksums itself. Exits with 0x10. */
#include "guestlib.h"

static void table(const char *name, const u8 *t) {
    u32 len = rd32(t + 4);
    puts_(name); puts_(": sig="); for (int i = 0; i < 4; i++) putc_((char)t[i]);
    puts_(" len="); putdec(len);
    puts_(" checksum="); puts_(len >= 36 && len <= 4096 && sum8(t, len) == 0 ? "ok" : "bad");
    if (t[0] == 'A' && len <= 4096) {          /* MADT: count local APIC entries */
        u32 n = 0;
        for (u32 off = 44; off + 2 <= len && t[off + 1] >= 2; off += t[off + 1]) if (t[off] == 0) n++;
        puts_(" lapics="); putdec(n);
    }
    if (t[0] == 'S' && t[1] == 'R' && len <= 4096) { /* SRAT: CPUs and memory ranges */
        u32 cpus = 0, mem = 0; u64 total = 0;
        for (u32 off = 48; off + 2 <= len && t[off + 1] >= 2; off += t[off + 1]) {
            if (t[off] == 0) cpus++;
            if (t[off] == 1) { mem++; total += rd64(t + off + 16); }
        }
        puts_(" cpus="); putdec(cpus); puts_(" ranges="); putdec(mem); puts_(" bytes="); puthex(total);
    }
    if (t[0] == 'S' && t[1] == 'L') { puts_(" localities="); putdec(rd64(t + 36)); }
    if (t[0] == 'P' && len <= 4096) {            /* PPTT: leaf processor nodes */
        u32 leaves = 0;
        for (u32 off = 36; off + 2 <= len && t[off + 1] >= 2; off += t[off + 1])
            if (t[off] == 0 && (rd32(t + off + 4) & 8)) leaves++;
        puts_(" leaves="); putdec(leaves);
    }
    putc_('\n');
}

int main(void) {
    puts_("params guest\n");
    puts_("vp_count="); putdec(rd32((void *)VP_COUNT_GPA)); putc_('\n');
    const u8 *mm = (const u8 *)MEMORY_MAP_GPA;
    for (int i = 0; i < 170; i++, mm += 24) {
        u64 pages = rd64(mm + 8);
        if (!pages) break;
        u64 start = rd64(mm) << 12;
        puts_("memory "); puthex(start); putc_('-'); puthex(start + (pages << 12));
        puts_(" type="); putdec(*(const u16 *)(mm + 16)); putc_('\n');
    }
    puts_("cmdline=["); puts_((const char *)CMDLINE_GPA); puts_("]\n");
    table("madt", (const u8 *)MADT_GPA);
    table("srat", (const u8 *)SRAT_GPA);
    table("slit", (const u8 *)SLIT_GPA);
    table("pptt", (const u8 *)PPTT_GPA);
    puts_("environment="); puthex(rd32((void *)ENV_GPA)); putc_('\n');
    const u8 *mmio = (const u8 *)MMIO_GPA;
    puts_("mmio "); puthex(rd64(mmio) << 12); putc_('+'); puthex(rd64(mmio + 8) << 12);
    puts_(" "); puthex(rd64(mmio + 16) << 12); putc_('+'); puthex(rd64(mmio + 24) << 12); putc_('\n');
    return 0x10;
}
