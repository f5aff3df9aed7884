/* What a UEFI SEC/PEI phase does with R12: find the config blob (or the IGVM parameter block) and check it.
   Prints one line per finding; the test compares them with the machine it asked for. Exits with 0x10. */
#include "guestlib.h"

static void acpi(const char *what, const u8 *t, u32 room) {
    u32 len = rd32(t + 4);
    puts_(what); puts_(" sig=");
    for (int i = 0; i < 4; i++) putc_((char)t[i]);
    puts_(" len="); putdec(len);
    puts_(len >= 36 && len <= room && sum8(t, len) == 0 ? " checksum=ok\n" : " checksum=bad\n");
}

static void memory_entry(u64 base, u64 len, u32 flags) {
    puts_("memory "); puthex(base); putc_('-'); puthex(base + len); puts_(" flags="); putdec(flags); putc_('\n');
}

static int blob(const u8 *b) {
    u32 count = rd32(b + 8), size = rd32(b + 12), n = 0, off = 0, ok = 1, total = 0;
    puts_("blob count="); putdec(count); puts_(" size="); putdec(size); putc_('\n');
    while (off < size && n < 1000) {
        u32 type = rd32(b + off), len = rd32(b + off + 4);
        if (len <= 8 || len % 8) { ok = 0; break; }
        const u8 *p = b + off + 8;
        if (type == 3) for (u32 e = 0; e + 24 <= len - 8; e += 24) memory_entry(rd64(p + e), rd64(p + e + 8), rd32(p + e + 16));
        if (type == 4) { u32 nz = 0; for (int i = 0; i < 64; i++) nz |= p[i]; puts_(nz ? "entropy=nonzero\n" : "entropy=zero\n"); if (len != 72) ok = 0; }
        if (type == 0x13) { puts_("processors="); putdec(rd32(p + 4)); puts_(" max="); putdec(rd32(p)); putc_('\n'); }
        if (type == 0x12) { puts_("flags="); puthex(rd64(p)); putc_('\n'); }
        if (type == 0x16) acpi("acpi", p, len - 8);
        total += len; off += len; n++;
    }
    puts_(ok && n == count && total == size ? "structures=ok\n" : "structures=bad\n");
    return 0;
}

static int param_block(const u8 *b) {
    u32 pages = rd32(b);
    puts_("parameter block pages="); putdec(pages); putc_('\n');
    puts_("vp_count="); putdec(rd32(b + rd32(b + 0x10) * 4096)); putc_('\n');
    const u8 *mm = b + rd32(b + 0x1c) * 4096;
    for (u32 i = 0; i < rd32(b + 0x20) * 4096 / 24; i++, mm += 24) {
        if (!rd64(mm + 8)) break;
        memory_entry(rd64(mm) << 12, rd64(mm + 8) << 12, *(const u16 *)(mm + 16));
    }
    acpi("madt", b + rd32(b + 0x24) * 4096, rd32(b + 0x28) * 4096);
    acpi("srat", b + rd32(b + 0x2c) * 4096, rd32(b + 0x30) * 4096);
    return 0;
}

int main(u64 r12) {
    puts_("uefi probe: r12="); puthex(r12); putc_('\n');
    if (r12 != 0x709000) { puts_("r12 is not the blob address\n"); return 0x10; }
    const u8 *b = (const u8 *)r12;
    if (rd32(b) == 0 && rd32(b + 4) == 16) blob(b);
    else if (rd32(b) == 83) param_block(b);
    else puts_("nothing recognisable at r12\n");
    return 0x10;
}
