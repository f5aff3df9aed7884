/* Fires malformed fw_cfg DMA descriptors and port accesses at the VMM, prints the control word of each, then
   proves the device still serves a good one. RAM_END (the guest's RAM size) comes in as a -D define. Exit 0x10. */
#include "fwcfg.h"

static volatile struct dma_access desc __attribute__((aligned(16)));

static void show(const char *what, u32 c) { puts_(what); puts_(" control="); puthex(c); putc_('\n'); }

int main(void) {
    volatile u8 *buf = (volatile u8 *)0x400000;
    show("outside-ram", dma_at(&desc, DMA_SELECT | DMA_READ, 0x3FFFFFF0, 16));
    show("crossing-ram-end", dma_at(&desc, DMA_SELECT | DMA_READ, RAM_END - 8, 16));
    show("in-hole", dma_at(&desc, DMA_SELECT | DMA_READ, 0xC0000000, 16));
    show("overflow", dma_at(&desc, DMA_SELECT | DMA_READ, 0xFFFFFFFFFFFFFFF0ul, 0x100));
    show("huge-length", dma_at(&desc, DMA_SELECT | DMA_READ, 0x100000, 0xFFFFFFFF));
    show("write-readonly", dma_at(&desc, DMA_SELECT | DMA_WRITE, (u64)buf, 4));
    show("write-absent", dma_at(&desc, DMA_SELECT | DMA_WRITE | (0x3FFFu << 16), (u64)buf, 4));
    for (int i = 0; i < 16; i++) buf[i] = 0xAA;
    u32 c = dma_at(&desc, DMA_SELECT | DMA_READ | (0xFFFFu << 16), (u64)buf, 16);
    u32 nz = 0; for (int i = 0; i < 16; i++) nz += buf[i] != 0;
    show("absent-key-reads-zero", c); puts_("nonzero="); putdec(nz); putc_('\n');
    show("skip-huge", dma_at(&desc, DMA_SELECT | DMA_SKIP, 0xFFFFFFFFFFFFFFFFul, 0xFFFFFFFF));
    show("no-op", dma_at(&desc, 0, 0, 0));
    /* descriptors the VMM cannot even read: past RAM, in the hole, straddling RAM's end, a high half set */
    volatile u32 *tail = (volatile u32 *)(RAM_END - 8);
    tail[0] = 0x11111111; tail[1] = 0x22222222;
    outl(FW_DMA_LO, be32(RAM_END - 8));
    outl(FW_DMA_LO, be32(0xFFFFFFF0));
    outl(FW_DMA_HI, be32(0xFFFFFFFF)); outl(FW_DMA_LO, be32(0xFFFFFFF8));
    puts_("tail="); puthex(tail[0]); putc_(' '); puthex(tail[1]); putc_('\n');
    desc.control = be32(DMA_SELECT | DMA_READ); desc.length = be32(4); desc.address = be64((u64)buf);
    outl(FW_DMA_HI, be32(1)); outl(FW_DMA_LO, be32((u32)(u64)&desc));   /* descriptor at 4 GiB + x: no RAM */
    show("high-half-set", be32(desc.control));
    /* port abuse: odd widths, data-port writes, string writes, wild selectors */
    puts_("inl-data="); puthex(inl(FW_SEL)); putc_('\n');
    outb(FW_DATA, 0x55); outl(FW_SEL, 0x12345678); outw(FW_SEL, 0xFFFF); outw(FW_SEL, 0x7FFF);
    outsb(FW_DATA, (const void *)buf, 64);
    /* a good descriptor now, with a low-half write only: the high half was reset after the last transfer */
    for (int i = 0; i < 4; i++) buf[i] = 0;
    c = dma_at(&desc, DMA_SELECT | DMA_READ, (u64)buf, 4);
    puts_("good sig="); for (int i = 0; i < 4; i++) putc_((char)buf[i]); show("", c);
    return 0x10;
}
