/* A Linux-protocol guest (linux_start.S: main(zero page)) that uses the ACPI fixed hardware the way an OS does:
   the FADT found through the zero page's RSDP gives the PM1a control and PM timer ports (ACPI 6.5 section 5.2.9)
   and the timer's width (FADT flag TMR_VAL_EXT); it checks SCI_EN, spins in pm_wait() until the 3.579545 MHz PM
   timer has advanced WAIT_MS milliseconds (failing if the timer ever steps back), prints a line on COM1 and powers
   off with the DSDT's \_S5 sleep type and SLP_EN in PM1a control (section 4.8.3.2.1). Return values (status
   (v << 1) | 1) mean a failure: 0x11 no FADT, 0x12 SCI_EN clear, 0x13 the timer went back, 0x14 no power-off, 0x15 no \_S5. */
#include "guestlib.h"

#ifndef WAIT_MS
#define WAIT_MS 500
#endif
#define PM_TIMER_HZ 3579545UL

static int sig_is(const u8 *p, const char *s) { for (int i = 0; s[i]; i++) if (p[i] != (u8)s[i]) return 0; return 1; }

static const u8 *fadt_of(const u8 *zp) {
    const u8 *rsdp = (const u8 *)rd64(zp + 0x70);                 /* boot_params.acpi_rsdp_addr */
    if (!rsdp || !sig_is(rsdp, "RSD PTR ")) return 0;
    const u8 *xsdt = (const u8 *)rd64(rsdp + 24);
    for (u32 off = 36; off + 8 <= rd32(xsdt + 4); off += 8) {
        const u8 *t = (const u8 *)rd64(xsdt + off);
        if (sig_is(t, "FACP")) return t;
    }
    return 0;
}

/* Spins until the timer at `port` has advanced `ticks`; 0 if a read was behind the one before (a delta over half
   the counter's range), else how many reads it took. */
__attribute__((noinline)) u64 pm_wait(u16 port, u32 mask, u64 ticks) {
    u32 prev = inl(port) & mask;
    u64 total = 0, reads = 1;
    while (total < ticks) {
        u32 now = inl(port) & mask, delta = (now - prev) & mask;
        if (delta > mask / 2) return 0;
        total += delta;
        prev = now;
        reads++;
    }
    return reads;
}

int main(const u8 *zp) {
    const u8 *fadt = fadt_of(zp);
    if (!fadt) return 0x11;
    u16 pm1a_cnt = (u16)rd32(fadt + 64), pm_tmr = (u16)rd32(fadt + 76);
    u16 s5 = dsdt_s5_slp_typ((const u8 *)rd64(fadt + 140));              /* X_DSDT */
    if (s5 > 7) return 0x15;
    u32 mask = (rd32(fadt + 112) & (1 << 8)) ? 0xffffffffu : 0xffffffu;   /* TMR_VAL_EXT: 32-bit, else 24-bit */
    if (!(inw(pm1a_cnt) & 1)) return 0x12;                                /* SCI_EN: ACPI mode */
    u64 reads = pm_wait(pm_tmr, mask, PM_TIMER_HZ * WAIT_MS / 1000);
    if (!reads) return 0x13;
    puts_("pm timer: "); putdec(WAIT_MS); puts_(" ms passed\n");
    outw(pm1a_cnt, (u16)((s5 << 10) | (1 << 13)));
    return 0x14;
}
