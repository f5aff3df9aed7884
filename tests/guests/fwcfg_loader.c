/* Runs fw_cfg's "etc/table-loader" the way firmware does (QEMU hw/acpi/bios-linker-loader.c entries; SeaBIOS
   src/fw/romfile_loader.c): ALLOCATE reads a file by DMA into memory (HIGH zone from 0x2000000, FSEG from 0xE0000,
   each aligned), ADD_POINTER adds a file's address, ADD_CHECKSUM fixes a byte, WRITE_POINTER writes an address
   back into a fw_cfg file by DMA SELECT+SKIP then WRITE. Prints one line per step and, at the end, each file's
   address and FNV-1a hash, so the host can compare with its own run of the script. Exit 0x10. */
#include "fwcfg.h"

#define MAX_FILES 32
#define ENTRY 128
static volatile struct dma_access desc __attribute__((aligned(16)));
static struct { char name[56]; u16 sel; u32 size; u8 *at; } files[MAX_FILES];
static u32 nfiles;
static u8 dir[4 + 64 * MAX_FILES], script[ENTRY * 64];

static int same(const char *a, const char *b) {
    for (int i = 0; i < 56; i++) { if (a[i] != b[i]) return 0; if (!a[i]) return 1; }
    return 1;
}
static int find(const char *name) {
    for (u32 i = 0; i < nfiles; i++) if (same(files[i].name, name)) return (int)i;
    return -1;
}
static u32 dma(u32 control, void *buf, u32 n) { return dma_at(&desc, control, (u64)buf, n); }
static u32 sel_ctl(int f, u32 op) { return DMA_SELECT | op | ((u32)files[f].sel << 16); }
static u32 read_file(int f, u8 *buf) { return dma(sel_ctl(f, DMA_READ), buf, files[f].size); }
static u64 le(const u8 *p, u32 n) { u64 v = 0; while (n--) v = (v << 8) | p[n]; return v; }
static void put_le(u8 *p, u64 v, u32 n) { while (n--) { *p++ = (u8)v; v >>= 8; } }
static void line(const char *what, const char *name) { puts_(what); putc_(' '); puts_(name); }

int main(void) {
    dma(DMA_SELECT | DMA_READ | (0x19u << 16), dir, 4);
    nfiles = be32(rd32(dir));
    if (nfiles > MAX_FILES) nfiles = MAX_FILES;
    dma(DMA_READ, dir + 4, 64 * nfiles);
    for (u32 i = 0; i < nfiles; i++) {
        const u8 *e = dir + 4 + 64 * i;
        files[i].size = be32(rd32(e)); files[i].sel = (u16)((e[4] << 8) | e[5]);
        for (int j = 0; j < 56; j++) files[i].name[j] = (char)e[8 + j];
    }
    int s = find("etc/table-loader");
    if (s < 0 || files[s].size > sizeof(script)) { puts_("no table-loader\n"); return 0x10; }
    read_file(s, script);
    u64 cursor[3] = {0, 0x2000000, 0xE0000};
    for (u32 pos = 0; pos < files[s].size; pos += ENTRY) {
        const u8 *c = script + pos;
        u32 cmd = rd32(c);
        if (cmd == 1) {                                   /* ALLOCATE file[56] align zone */
            int f = find((const char *)c + 4);
            u32 align = rd32(c + 60); u8 zone = c[64];
            if (f < 0 || zone < 1 || zone > 2 || !align || (align & (align - 1))) {
                line("bad allocate", (const char *)c + 4); putc_('\n'); continue;
            }
            u64 at = (cursor[zone] + align - 1) & ~(u64)(align - 1);
            files[f].at = (u8 *)at; cursor[zone] = at + files[f].size;
            u32 ctl = read_file(f, files[f].at);
            line("allocate", files[f].name); puts_(" control="); puthex(ctl); putc_('\n');
        } else if (cmd == 2) {                            /* ADD_POINTER dest[56] src[56] offset size */
            int d = find((const char *)c + 4), r = find((const char *)c + 60);
            u32 off = rd32(c + 116); u8 size = c[120];
            if (d < 0 || r < 0 || !files[d].at || !files[r].at || off + size > files[d].size) {
                puts_("bad add_pointer\n"); continue;
            }
            put_le(files[d].at + off, le(files[d].at + off, size) + (u64)files[r].at, size);
        } else if (cmd == 3) {                            /* ADD_CHECKSUM file[56] offset start length */
            int f = find((const char *)c + 4);
            u32 off = rd32(c + 60), start = rd32(c + 64), len = rd32(c + 68);
            if (f < 0 || !files[f].at || off >= files[f].size || start + len > files[f].size) {
                puts_("bad add_checksum\n"); continue;
            }
            files[f].at[off] -= sum8(files[f].at + start, len);
        } else if (cmd == 4) {                   /* WRITE_POINTER dest[56] src[56] dst_offset src_offset size */
            int d = find((const char *)c + 4), r = find((const char *)c + 60);
            u32 dst_off = rd32(c + 116), src_off = rd32(c + 120); u8 size = c[124];
            if (d < 0 || r < 0 || !files[r].at || dst_off + size > files[d].size || src_off >= files[r].size) {
                puts_("bad write_pointer\n"); continue;
            }
            static u64 value;
            value = (u64)files[r].at + src_off;
            u32 skip = dma(sel_ctl(d, DMA_SKIP), 0, dst_off);
            u32 ctl = dma(DMA_WRITE, &value, size);
            line("write_pointer", files[d].name); puts_(" value="); puthex(value);
            puts_(" skip="); puthex(skip); puts_(" control="); puthex(ctl); putc_('\n');
            static u8 back[64];
            u32 n = files[d].size < 64 ? files[d].size : 64;
            dma(sel_ctl(d, DMA_READ), back, n);
            line("readback", files[d].name); puts_(" value="); puthex(le(back + dst_off, size)); putc_('\n');
        }
    }
    for (u32 i = 0; i < nfiles; i++) {
        if (!files[i].at) continue;
        line("file", files[i].name); puts_(" at="); puthex((u64)files[i].at);
        puts_(" fnv="); puthex(fnv1a(files[i].at, files[i].size)); putc_('\n');
    }
    return 0x10;
}
