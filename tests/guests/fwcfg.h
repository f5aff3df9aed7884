/* fw_cfg access for C test guests: string port I/O (rep insb/outsb data) and DMA descriptors; outw/outl/inl are
   in guestlib.h. */
#ifndef FWCFG_H
#define FWCFG_H
#include "guestlib.h"

#define FW_SEL 0x510
#define FW_DATA 0x511
#define FW_DMA_HI 0x514
#define FW_DMA_LO 0x518
#define DMA_ERROR 0x01
#define DMA_READ 0x02
#define DMA_SKIP 0x04
#define DMA_SELECT 0x08
#define DMA_WRITE 0x10

static inline void insb(u16 port, void *dst, u64 n) {
    __asm__ volatile("rep insb" : "+D"(dst), "+c"(n) : "d"(port) : "memory");
}
static inline void outsb(u16 port, const void *src, u64 n) {
    __asm__ volatile("rep outsb" : "+S"(src), "+c"(n) : "d"(port) : "memory");
}
static inline u32 be32(u32 v) { return __builtin_bswap32(v); }
static inline u64 be64(u64 v) { return __builtin_bswap64(v); }

struct dma_access { u32 control, length; u64 address; } __attribute__((packed));

/* Fill a descriptor at `d`, start it with one low-half write (the high half is 0 after every transfer), and
   return the control word the VMM wrote back (host order). */
static u32 dma_at(volatile struct dma_access *d, u32 control, u64 address, u32 length) {
    d->control = be32(control); d->length = be32(length); d->address = be64(address);
    outl(FW_DMA_LO, be32((u32)(u64)d));
    return be32(d->control);
}

static u32 fnv1a(const u8 *p, u32 n) {
    u32 h = 2166136261u;
    while (n--) { h ^= *p++; h *= 16777619u; }
    return h;
}
#endif
