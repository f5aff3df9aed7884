/* What both example stages need: an entry point, COM1 output, and fw_cfg by DMA (QEMU's docs/specs/fw_cfg.rst).
   Freestanding x86-64 C; pyvmm starts the image in 64-bit mode with identity-mapped low 4 GiB and a stack. */
#ifndef COMMON_H
#define COMMON_H
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

int main(void);
__asm__(".globl _start\n_start:\n and $-16, %rsp\n call main\n1: hlt\n jmp 1b\n");

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(p) : "memory"); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(p) : "memory"); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(p) : "memory"); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }

static void putc_(char c) { while (!(inb(0x3fd) & 0x20)) { } outb(0x3f8, (u8)c); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static inline void puthex(u64 v) {
    char b[19]; int i = 18; b[i] = 0;
    do { b[--i] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    b[--i] = 'x'; b[--i] = '0'; puts_(b + i);
}

/* fw_cfg DMA: a big-endian FWCfgDmaAccess; writing its address to port 0x518 runs it synchronously. */
#define FW_DMA_LO 0x518
#define DMA_ERROR 0x01
#define DMA_READ 0x02
#define DMA_SKIP 0x04
#define DMA_SELECT 0x08
#define DMA_WRITE 0x10
struct dma_access { u32 control, length; u64 address; } __attribute__((packed));
static volatile struct dma_access desc __attribute__((aligned(16)));

static u32 fw_dma(u32 control, void *buf, u32 length) {
    desc.control = __builtin_bswap32(control);
    desc.length = __builtin_bswap32(length);
    desc.address = __builtin_bswap64((u64)buf);
    outl(FW_DMA_LO, __builtin_bswap32((u32)(u64)&desc));
    return __builtin_bswap32(desc.control);              /* 0, or DMA_ERROR */
}

/* The selector and size of the fw_cfg file `name` (directory at key 0x19), or 0. */
static inline u16 fw_find(const char *name, u32 *size) {
    static u8 dir[4 + 64 * 64];
    fw_dma(DMA_SELECT | DMA_READ | (0x19u << 16), dir, 4);
    u32 n = __builtin_bswap32(*(u32 *)dir);
    if (n > 64) n = 64;
    fw_dma(DMA_READ, dir + 4, 64 * n);
    for (u32 i = 0; i < n; i++) {
        const u8 *e = dir + 4 + 64 * i;
        int j = 0;
        while (name[j] && e[8 + j] == name[j]) j++;
        if (!name[j] && !e[8 + j]) { *size = __builtin_bswap32(*(const u32 *)e); return (u16)(e[4] << 8 | e[5]); }
    }
    return 0;
}

/* Where stage 1 leaves a note for stage 2: RAM no target of stage 2's IGVM covers survives the reset. */
#define NOTE ((volatile char *)0x5000000)
#endif
