/* Reads fw_cfg twice, by port I/O and by DMA: signature, ID, DMA signature, the directory, and the file named
   by the test ("opt/test"), printing one line per fact so the host can compare with its own bytes. Exit 0x10. */
#include "fwcfg.h"

#define PIO_BUF ((u8 *)0x400000)
#define DMA_BUF ((u8 *)0x1000000)
static volatile struct dma_access desc __attribute__((aligned(16)));

static void pio_read(u16 key, u8 *buf, u32 n) { outw(FW_SEL, key); insb(FW_DATA, buf, n); }

static void dma_read(u16 key, int select, u8 *buf, u32 n) {
    u32 c = dma_at(&desc, DMA_READ | (select ? DMA_SELECT | ((u32)key << 16) : 0), (u64)buf, n);
    if (c) { puts_("dma error "); puthex(c); putc_('\n'); }
}

static void fact(const char *mode, const char *what) { puts_(mode); putc_(' '); puts_(what); }

static void report(const char *mode, int dma) {
    u8 b[64];
    if (dma) dma_read(0, 1, b, 4);
    else { outw(FW_SEL, 0); for (int i = 0; i < 4; i++) b[i] = inb(FW_DATA); }   /* single inb path */
    fact(mode, "sig="); for (int i = 0; i < 4; i++) putc_((char)b[i]); putc_('\n');
    if (dma) dma_read(1, 1, b, 4); else pio_read(1, b, 4);
    fact(mode, "id="); puthex(rd32(b)); putc_('\n');
    u8 *dir = dma ? DMA_BUF : PIO_BUF;
    if (dma) dma_read(0x19, 1, dir, 4); else pio_read(0x19, dir, 4);
    u32 count = be32(rd32(dir));
    if (count > 64) count = 64;
    if (dma) dma_read(0, 0, dir + 4, count * 64); else insb(FW_DATA, dir + 4, count * 64);
    fact(mode, "count="); putdec(count); putc_('\n');
    u16 sel = 0; u32 size = 0;
    for (u32 i = 0; i < count; i++) {
        const u8 *e = dir + 4 + 64 * i;
        u32 sz = be32(rd32(e)); u16 s = (u16)((e[4] << 8) | e[5]);
        fact(mode, "file "); puthex(s); putc_(' '); putdec(sz); putc_(' '); puts_((const char *)e + 8); putc_('\n');
        const char *want = "opt/test"; int j = 0;
        while (want[j] && e[8 + j] == want[j]) j++;
        if (!want[j] && !e[8 + j]) { sel = s; size = sz; }
    }
    u8 *data = dir + 0x10000;
    if (dma) dma_read(sel, 1, data, size); else pio_read(sel, data, size);
    fact(mode, "opt/test size="); putdec(size); puts_(" fnv="); puthex(fnv1a(data, size)); putc_('\n');
    if (dma) {              /* SKIP 100 bytes, then READ 16 without SELECT: the item's bytes 100..115 */
        u32 c = dma_at(&desc, DMA_SELECT | DMA_SKIP | ((u32)sel << 16), 0, 100);
        dma_read(0, 0, b, 16);
        fact(mode, "skip control="); puthex(c); puts_(" fnv="); puthex(fnv1a(b, 16)); putc_('\n');
    }
}

static u32 item32(u16 key) { u8 b[4]; pio_read(key, b, 4); return rd32(b); }

/* Direct-boot items (present with --kernel): sizes and hashes of what QEMU's option ROM would load. */
static void kernel_items(void) {
    u32 csz = item32(0x14);
    if (!csz) { puts_("kernel items=none\n"); return; }
    u8 *buf = (u8 *)0x2000000;
    dma_read(0x15, 1, buf, csz);
    puts_("cmdline=["); puts_((const char *)buf); puts_("]\n");
    static const struct { u16 size_key, data_key; const char *name; } parts[] = {
        {0x08, 0x11, "kernel"}, {0x17, 0x18, "setup"}, {0x0b, 0x12, "initrd"}};
    for (int i = 0; i < 3; i++) {
        u32 n = item32(parts[i].size_key);
        dma_read(parts[i].data_key, 1, buf, n);
        puts_(parts[i].name); puts_(" size="); putdec(n); puts_(" fnv="); puthex(fnv1a(buf, n)); putc_('\n');
    }
    puts_("kernel_addr="); puthex(item32(0x07)); puts_(" setup_addr="); puthex(item32(0x16));
    puts_(" cmdline_addr="); puthex(item32(0x13)); puts_(" initrd_addr="); puthex(item32(0x0a)); putc_('\n');
}

int main(void) {
    u32 s1 = inl(FW_DMA_HI), s2 = inl(FW_DMA_LO);
    puts_("dma_sig=");
    for (int i = 0; i < 4; i++) putc_((char)(s1 >> (8 * i)));
    for (int i = 0; i < 4; i++) putc_((char)(s2 >> (8 * i)));
    putc_('\n');
    report("pio", 0);
    report("dma", 1);
    kernel_items();
    return 0x10;
}
