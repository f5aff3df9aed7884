/* Checks the PC platform a firmware sees, the way edk2's OVMF reaches it: PCI configuration mechanism #1 (the
   i440FX host bridge, the PIIX3 ISA bridge, the PIIX4 PM function), the PM timer's rate against its own wall
   clock (the CMOS seconds), CMOS fields, unassigned I/O and MMIO; prints one "key=value" line per fact for the
   host to compare. ACTION (a -D define) picks the ending: 0 exit 0x10, 1 S5 power-off at PMBA + 4,
   2 reset through 0xCF9, 3 move PMBA to 0xC000 first and power off there. */
#include "guestlib.h"

#ifndef ACTION
#define ACTION 0
#endif
#ifndef MEASURE_TIMER
#define MEASURE_TIMER 1
#endif


/* edk2's BasePciLibCf8 pattern: save 0xCF8, select, access 0xCFC + (reg & 3), restore */
static u32 cfg_addr(u32 dev, u32 fn, u32 reg) { return 0x80000000u | dev << 11 | fn << 8 | (reg & 0xFC); }
static u32 cfg_read(u32 dev, u32 fn, u32 reg, int size) {
    u32 saved = inl(0xCF8), v;
    outl(0xCF8, cfg_addr(dev, fn, reg));
    if (size == 1) v = inb(0xCFC + (reg & 3));
    else if (size == 2) v = inw(0xCFC + (reg & 2));
    else v = inl(0xCFC);
    outl(0xCF8, saved);
    return v;
}
static void cfg_write(u32 dev, u32 fn, u32 reg, int size, u32 v) {
    u32 saved = inl(0xCF8);
    outl(0xCF8, cfg_addr(dev, fn, reg));
    if (size == 1) outb(0xCFC + (reg & 3), (u8)v);
    else if (size == 2) outw(0xCFC + (reg & 2), (u16)v);
    else outl(0xCFC, v);
    outl(0xCF8, saved);
}
static void kv(const char *k, u64 v) { puts_(k); putc_('='); puthex(v); putc_('\n'); }
static u8 cmos(u8 reg) { outb(0x70, reg | 0x80); return inb(0x71); }   /* bit 7: NMI off, as PcRtc sends it */

int main(void) {
    outl(0xCF8, 0x12345678);
    kv("cf8_readback", inl(0xCF8));
    kv("host_did", cfg_read(0, 0, 2, 2));
    kv("host_vid", cfg_read(0, 0, 0, 2));
    kv("host_pin", cfg_read(0, 0, 0x3D, 1));
    kv("isa_id", cfg_read(1, 0, 0, 4));
    kv("isa_class", cfg_read(1, 0, 8, 4) >> 8);
    kv("isa_header", cfg_read(1, 0, 0x0E, 1));
    cfg_write(1, 0, 4, 2, 0x0003);
    kv("isa_command", cfg_read(1, 0, 4, 2));
    kv("pm_id", cfg_read(1, 3, 0, 4));
    kv("absent", cfg_read(5, 0, 0, 4));
    kv("pmba", cfg_read(1, 3, 0x40, 4));
    kv("pmregmisc", cfg_read(1, 3, 0x80, 1));
    u16 pm = cfg_read(1, 3, 0x40, 4) & 0xFFC0;
    /* the PM timer against the RTC: count ticks across whole CMOS seconds */
    u8 s0 = cmos(0), s;
    while (MEASURE_TIMER && (s = cmos(0)) == s0) { }
    u32 prev = inl(pm + 8) & 0xFFFFFF, ticks = 0;
    u8 target = s;
    for (int n = 0; MEASURE_TIMER && n < 2; ) {
        u32 t = inl(pm + 8) & 0xFFFFFF;
        ticks += (t - prev) & 0xFFFFFF;
        prev = t;
        u8 now = cmos(0);
        if (now != target) { target = now; n++; }
    }
    kv("pm_ticks_2s", ticks);
    kv("pm_timer_high", inl(pm + 8) >> 24);
    static const u8 regs[] = {0x0A, 0x0B, 0x0D, 0x0F, 0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35,
                              0x5B, 0x5C, 0x5D, 0x5F, 0x32, 0x09, 0x08, 0x07};
    for (unsigned i = 0; i < sizeof regs; i++) { puts_("cmos"); puthex(regs[i]); putc_('='); puthex(cmos(regs[i])); putc_('\n'); }
    kv("port70", inb(0x70));
    kv("unassigned_port", inl(0xAF00));
    kv("unassigned_mmio", rd32((const void *)0xFED40000));
    if (ACTION == 1) { outw(pm + 4, (u16)(inw(pm + 4) & ~(7 << 10)) | (1 << 13)); return 0x20; }
    if (ACTION == 2) { outb(0xCF9, 0x06); return 0x21; }
    if (ACTION == 3) {
        cfg_write(1, 3, 0x40, 4, 0xC001);
        kv("old_block", inw(pm + 4));
        outw(0xC004, 1 << 13);
        return 0x22;
    }
    return 0x10;
}
