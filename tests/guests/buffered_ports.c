/* Writes to the ports whose writes KVM buffers in the coalesced ring (the POST code 0x80, the CMOS index 0x70, the
   debug console 0x402), mixed with COM1 output, each followed by a read that must see it: prints one "key=value"
   line per read for the host to compare, and returns 0. COUNT POST codes come first, with nothing between them. */
#include "guestlib.h"

#ifndef COUNT
#define COUNT 1000
#endif

static void kv(const char *k, u64 v) { puts_(k); putc_('='); puthex(v); putc_('\n'); }

int main(void) {
    for (u32 i = 0; i < COUNT; i++)
        outb(0x80, (u8)i);
    kv("post", inb(0x80));                       /* the last code written */
    for (u8 i = 0; i < 16; i++) {                /* the ring holds entries of three zones, in this order */
        outb(0x80, 0xA0 + i);
        outb(0x402, 'a' + i);
        outb(0x3F8, 'A' + i);                    /* THR, no LSR poll between: it is buffered too */
    }
    outb(0x3F8, '\n');
    kv("post_mixed", inb(0x80));
    outb(0x70, 0x8D);                            /* register D through the buffered index: VRT (bit 7) set */
    kv("cmos_d", inb(0x71));
    outb(0x70, 0xC0);                            /* CMOS RAM byte 0x40 (bit 7: NMI off, as edk2's PcRtc sends) */
    outb(0x71, 0x5A);
    outb(0x70, 0x8D);
    inb(0x71);
    outb(0x70, 0xC0);
    kv("cmos_40", inb(0x71));
    kv("debugcon", inb(0x402));                  /* 0xE9, the Bochs magic */
    return 0;
}
