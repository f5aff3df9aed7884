/* A probe "kernel" that checks what Linux relies on at its 64-bit entry: the zero page in RSI, the e820 map,
   the command line, the initrd (place and a checksum), RSDP -> XSDT -> tables with their checksums and the
   MADT's CPUs; then it powers off through the FADT's PM1a control register with the DSDT's \_S5 sleep type. */
#include "guestlib.h"

static int sig_is(const u8 *p, const char *s) { for (int i = 0; s[i]; i++) if (p[i] != (u8)s[i]) return 0; return 1; }

int main(u8 *zp) {
    puts_("linux probe: rsi="); puthex((u64)zp);
    puts_(sig_is(zp + 0x202, "HdrS") && *(u16 *)(zp + 0x1fe) == 0xAA55 ? " header=ok" : " header=bad");
    puts_(" loader="); puthex(zp[0x210]); putc_('\n');
    u8 n = zp[0x1e8];
    for (u8 i = 0; i < n && i < 128; i++) {
        const u8 *e = zp + 0x2d0 + 20 * i;
        puts_("e820 "); puthex(rd64(e)); putc_('-'); puthex(rd64(e) + rd64(e + 8)); puts_(" type=");
        putdec(rd32(e + 16)); putc_('\n');
    }
    const char *cmd = (const char *)(u64)rd32(zp + 0x228);
    puts_("cmdline=["); if (cmd) puts_(cmd); puts_("]\n");
    u32 rd = rd32(zp + 0x218), rs = rd32(zp + 0x21c);
    if (rs) {
        u32 h = 2166136261u;                                 /* FNV-1a over the initrd */
        for (u32 i = 0; i < rs; i++) { h ^= ((const u8 *)(u64)rd)[i]; h *= 16777619u; }
        puts_("initrd "); puthex(rd); puts_(" size="); putdec(rs); puts_(" fnv="); puthex(h); putc_('\n');
    }
    const u8 *rsdp = (const u8 *)rd64(zp + 0x70);
    if (!rsdp || !sig_is(rsdp, "RSD PTR ")) { puts_("no rsdp\n"); return 0x11; }
    puts_("rsdp "); puthex((u64)rsdp); puts_(sum8(rsdp, 20) == 0 && sum8(rsdp, 36) == 0 ? " checksum=ok\n" : " checksum=bad\n");
    const u8 *xsdt = (const u8 *)rd64(rsdp + 24);
    u32 xlen = rd32(xsdt + 4);
    puts_("xsdt "); puts_(sig_is(xsdt, "XSDT") && sum8(xsdt, xlen) == 0 ? "ok\n" : "bad\n");
    u16 pm1a_cnt = 0, s5 = 0xFFFF;
    for (u32 off = 36; off + 8 <= xlen; off += 8) {
        const u8 *t = (const u8 *)rd64(xsdt + off);
        u32 len = rd32(t + 4);
        puts_("table "); for (int i = 0; i < 4; i++) putc_((char)t[i]);
        puts_(sum8(t, len) == 0 ? " checksum=ok" : " checksum=bad");
        if (sig_is(t, "APIC")) {
            u32 cpus = 0;
            for (u32 o = 44; o + 2 <= len && t[o + 1] >= 2; o += t[o + 1]) if (t[o] == 0 && (rd32(t + o + 4) & 1)) cpus++;
            puts_(" cpus="); putdec(cpus);
        }
        if (sig_is(t, "FACP")) {
            const u8 *dsdt = (const u8 *)rd64(t + 140);
            pm1a_cnt = (u16)rd32(t + 64);
            puts_(" dsdt="); puts_(sig_is(dsdt, "DSDT") && sum8(dsdt, rd32(dsdt + 4)) == 0 ? "ok" : "bad");
            s5 = dsdt_s5_slp_typ(dsdt);
            puts_(" s5="); putdec(s5);
        }
        putc_('\n');
    }
    if (!pm1a_cnt || s5 > 7) return 0x12;
    puts_("powering off\n");
    __asm__ volatile("outw %0, %1" : : "a"((u16)((s5 << 10) | (1 << 13))), "Nd"(pm1a_cnt));
    return 0x13;                                      /* only if power-off did not happen */
}
