/* One stage of a vmfwupdate chain (with start64.S). Every stage counts its boots in RAM (a reset keeps RAM),
   finds etc/vmfwupdate, prints its fields, and then, unless this is its boot number MAX_BOOTS (default 2; exit STAGE):
     CASE 0  loads the IGVM file opt/stage<STAGE+1> from fw_cfg to IMG_ADDR, requests it, resets;
     CASE 1  the same with the address and the size written by two separate DMA writes (SKIP 16, SKIP 24);
     CASE 2  writes address and size without the FORMAT_IGVM control bit;
     CASE 3  requests the update, then sets DISABLE;
     CASE 4  walks the read-back rules, printing the fields after each write;
   ADDR/SIZE (if defined) replace the address and size written. RESET_HOW: 1 i8042 0xFE, 2 RESET_PORT <-
   RESET_VALUE (the FADT reset register), 3 triple fault. Stage 1 fills a RAM pattern every stage hashes.
   KVMCLOCK: stage 1 turns kvmclock on at KVMCLOCK_ADDR; later stages check that nothing writes that page. */
#include "fwcfg.h"

#define FORMAT_IGVM (1UL << 32)
#define DISABLE 1UL
#define IMG_ADDR 0x2000000UL
#define COUNTERS ((volatile u64 *)0x3000000)
#define PATTERN ((u8 *)0x3100000)
#define PATTERN_SIZE 0x10000
#define BUF ((u8 *)0x3200000)
#ifndef CASE
#define CASE 0
#endif
#ifndef RESET_HOW
#define RESET_HOW 1
#endif
#ifndef MAX_BOOTS
#define MAX_BOOTS 2
#endif

static volatile struct dma_access desc __attribute__((aligned(16)));
static u16 sel;

static u16 find(const char *want, u32 *size) {
    u8 *dir = BUF;
    dma_at(&desc, DMA_READ | DMA_SELECT | (0x19u << 16), (u64)dir, 4);
    u32 count = be32(rd32(dir));
    if (count > 64) count = 64;
    dma_at(&desc, DMA_READ, (u64)dir + 4, count * 64);
    for (u32 i = 0; i < count; i++) {
        const u8 *e = dir + 4 + 64 * i;
        int j = 0;
        while (want[j] && e[8 + j] == want[j]) j++;
        if (!want[j] && !e[8 + j]) { *size = be32(rd32(e)); return (u16)((e[4] << 8) | e[5]); }
    }
    *size = 0;
    return 0;
}

static void dev_write(u32 offset, u64 *src, u32 n) {
    u32 c = dma_at(&desc, DMA_SELECT | DMA_SKIP | ((u32)sel << 16), 0, offset);
    c |= dma_at(&desc, DMA_WRITE, (u64)src, n);
    if (c) { puts_("write error "); puthex(c); putc_('\n'); }
}

static void show(const char *what) {
    u64 f[4];
    dma_at(&desc, DMA_READ | DMA_SELECT | ((u32)sel << 16), (u64)f, 32);
    puts_(what); puts_(" caps="); puthex(f[0]); puts_(" control="); puthex(f[1]);
    puts_(" addr="); puthex(f[2]); puts_(" size="); puthex(f[3]); putc_('\n');
}

static void put1(u32 offset, u64 v) { u64 x = v; dev_write(offset, &x, 8); }

static void put2(u32 offset, u64 a, u64 b) { u64 x[2] = {a, b}; dev_write(offset, x, 16); }

static void readback_rules(void) {
    u64 all[4] = {0, FORMAT_IGVM, IMG_ADDR, 0x1000};
    put1(0, ~0UL); show("caps-written");
    put1(8, ~0UL & ~DISABLE); show("unknown-bits");
    put2(16, IMG_ADDR, 0x1000); show("with-format");
    put1(8, 0); show("format-cleared");
    put2(16, IMG_ADDR, 0x1000); show("no-format");
    dev_write(0, all, 32); show("all-32");
    put1(8, DISABLE); show("disabled");
    put1(8, 0); show("clear-disable");
    dev_write(0, all, 32); show("frozen");
}

static void reset(void) {
#if RESET_HOW == 1
    while (inb(0x64) & 2) { }
    outb(0x64, 0xfe);
#elif RESET_HOW == 2
    outb(RESET_PORT, RESET_VALUE);
#else
    static const struct { u16 limit; u64 base; } __attribute__((packed)) none = {0, 0};
    __asm__ volatile("lidt %0; ud2" : : "m"(none));
#endif
    for (;;) __asm__ volatile("pause");
}

static void wrmsr(u32 msr, u64 v) {
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}

static void kvmclock(void) {
#ifdef KVMCLOCK_ADDR
    volatile u8 *page = (volatile u8 *)KVMCLOCK_ADDR;
    if (STAGE == 1) {
        wrmsr(0x4b564d01, KVMCLOCK_ADDR | 1);          /* MSR_KVM_SYSTEM_TIME_NEW, enabled */
        for (int i = 0; i < 100000 && !rd32((const void *)page); i++) outb(0x80, 0);
        puts_("kvmclock version="); puthex(rd32((const void *)page)); putc_('\n');
        return;
    }
    for (int i = 0; i < 4096; i++) page[i] = 0x5a;
    for (int i = 0; i < 2000; i++) outb(0x80, 0);     /* vCPU entries: when a stale kvmclock would be updated */
    u32 bad = 0;
    for (int i = 0; i < 4096; i++) bad += page[i] != 0x5a;
    puts_("kvmclock page changed bytes="); putdec(bad); putc_('\n');
#endif
}

int main(void) {
    u64 boot = ++COUNTERS[STAGE];
    puts_("stage "); putdec(STAGE); puts_(" boot "); putdec(boot); putc_('\n');
    u32 size;
    sel = find("etc/vmfwupdate", &size);
    puts_("vmfwupdate sel="); puthex(sel); puts_(" size="); putdec(size); putc_('\n');
    if (!sel) return STAGE;
    show("fields");
    if (STAGE == 1 && boot == 1)
        for (u32 i = 0; i < PATTERN_SIZE; i++) PATTERN[i] = (u8)(i * 7 + (i >> 8));
    puts_("pattern fnv="); puthex(fnv1a(PATTERN, PATTERN_SIZE)); putc_('\n');
    kvmclock();
    if (boot >= MAX_BOOTS) return STAGE;
    if (CASE == 4) { readback_rules(); reset(); }
    const char next[] = {'o', 'p', 't', '/', 's', 't', 'a', 'g', 'e', (char)('1' + STAGE), 0};
    u32 n;
    u16 img = find(next, &n);
    if (img) dma_at(&desc, DMA_READ | DMA_SELECT | ((u32)img << 16), IMG_ADDR, n);
    else for (u32 i = 0; i < 0x10000; i++) ((volatile u8 *)IMG_ADDR)[i] = 0xcc;   /* the firmware's source is gone:
                                                                                       a later reset needs pyvmm's copy */
#ifdef ADDR
    u64 addr = ADDR;
#else
    u64 addr = IMG_ADDR;
#endif
#ifdef SIZE
    u64 len = SIZE;
#else
    u64 len = n;
#endif
    if (CASE != 2) put1(8, FORMAT_IGVM);
    if (CASE == 1) { put1(16, addr); show("addr-only"); put1(24, len); }
    else put2(16, addr, len);
    if (CASE == 3) put1(8, DISABLE | FORMAT_IGVM);
    show("requested");
    reset();
    return 0;
}
