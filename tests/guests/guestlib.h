/* Tiny freestanding helpers for C test guests: port I/O, a polling COM1 writer, hex/decimal printing. */
#ifndef GUESTLIB_H
#define GUESTLIB_H
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
/* "memory" on the wider writes: a fw_cfg DMA started by an OUT reads and writes guest memory the compiler must not
   cache across it */
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void putc_(char c) {
    while (!(inb(0x3fd) & 0x20)) { }
    outb(0x3f8, (u8)c);
}
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(u64 v) {
    char buf[19]; int i = 18; buf[i] = 0;
    do { buf[--i] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    buf[--i] = 'x'; buf[--i] = '0';
    puts_(buf + i);
}
static void putdec(u64 v) {
    char buf[21]; int i = 20; buf[i] = 0;
    do { buf[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    puts_(buf + i);
}
static u8 sum8(const u8 *p, u32 n) { u8 s = 0; while (n--) s += *p++; return s; }
static u32 rd32(const void *p) { return *(const volatile u32 *)p; }
static u64 rd64(const void *p) { return *(const volatile u64 *)p; }
/* The sleep type of Name(\_S5, Package() {BytePrefix SLP_TYP, ...}) in a DSDT, or 0xFFFF if it has none: what an
   OS writes to PM1a control with SLP_EN to power off (ACPI 6.5 section 7.4.2). */
static u16 dsdt_s5_slp_typ(const u8 *dsdt) {
    u32 len = rd32(dsdt + 4);
    for (u32 o = 36; o + 9 <= len; o++)
        if (dsdt[o] == '_' && dsdt[o + 1] == 'S' && dsdt[o + 2] == '5' && dsdt[o + 3] == '_' && dsdt[o + 4] == 0x12 &&
            dsdt[o + 7] == 0x0A)
            return dsdt[o + 8];
    return 0xFFFF;
}
#endif
