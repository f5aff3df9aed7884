/* A hostile guest: on every vCPU at once, a seeded, deterministic stream of port accesses (claimed and unclaimed
   ports, widths 1/2/4, in and out, rep ins/outs), malformed fw_cfg DMA descriptors (addresses in RAM, past RAM, in
   the MMIO hole, wrapping 2^64, on the descriptor itself; huge lengths; random control bits and keys) and
   traditional fw_cfg reads, and random vmfwupdate requests (etc/vmfwupdate records naming garbage or nothing). Writes that would end the run (debug exit, reset, power-off) are filtered out, except
   in reset mode, where vCPU 0 resets the machine (by a method the seed picks) while the others keep firing DMA.

   Parameters come from the block at PARAMS_GPA (magic HOSTILE_MAGIC), written by the test's load plan; without it
   the guest runs forever (the --timeout and signal tests). Every DMA target the guest points into RAM lies in the
   scratch half of RAM [ram_end/2, ram_end), so the VMM's writes never clobber the guest's own code or stacks.

   At the end vCPU 0 waits for the others, checks fw_cfg still answers a good DMA with "QEMU", prints its counts
   and exits through the debug port with 0x10 (healthy) or 0x11 (fw_cfg no longer serves a good descriptor). */
#include "fwcfg.h"

#define PARAMS_GPA 0x8000
#define HOSTILE_MAGIC 0x31454c4954534f48ul   /* "HOSTILE1" */
#define MODE_SWEEP 1                          /* first walk every port 0..0xffff, each width, in and out */
#define MODE_RESET 2                          /* vCPU 0 resets the machine `resets` times, mid-stream */
#define GEN_GPA 0x7000                        /* resets done so far: RAM outside the plan's pages, which survives a
                                                 reset while the plan's pages are written afresh */

struct params { u64 magic, seed, ops, ram_end, mode, reset_after, ncpus, resets; };
struct counts { u64 ops, port, string, dma, dma_ok, dma_err, dma_untouched, fwread, vmfw; };

/* Shared state lives in the parameter page, which the load plan writes afresh on every launch: guest RAM survives
   a reset, so state in .bss would carry one machine's counts into the next. */
#define done_cpus (*(volatile u32 *)(PARAMS_GPA + 0x80))
#define COUNTS ((struct counts *)(PARAMS_GPA + 0x100))   /* 48 vCPUs at most */
static const u16 claimed[] = {
    0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x60, 0x64, 0x80, 0x92, 0xcf9,
    0xb000, 0xb002, 0xb004, 0xb005, 0xb008, 0xb00c, 0x402, 0x510, 0x511, 0x512, 0x514, 0x518, 0x51b,
    0x20, 0x21, 0xa0, 0xa1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x4d0, 0x4d1, 0x70, 0x71, 0xcf8, 0xcfc,
};
#define NCLAIMED (sizeof(claimed) / sizeof(claimed[0]))

static u64 next(u64 *s) {           /* xorshift64*: deterministic per (seed, vCPU) */
    u64 x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dul;
}

/* The byte `b` about to go to port `q`, defused so that it cannot end the run: no debug exit, no reset through
   0xcf9, 0x92 or the i8042 (pulse-reset commands and the output-port write command), no ACPI S5 (SLP_EN, bit 13
   of PM1a control at PMBA + 4, where a direct boot finds the PIIX4 PM block: 0xb000). Returns -1 when the whole
   access must be skipped. */
static int defuse(u16 q, u8 b) {
    if (q == 0xf4) return -1;
    if (q >= 0x514 && q <= 0x51b) return -1;   /* DMA starts only from fire_dma(): a random descriptor address
                                                  could otherwise point the VMM's writes at the guest's own code */
    if (q == 0x92) return b & ~1;
    if (q == 0xcf9) return b & ~4;
    if (q == 0x64 && (b == 0xd1 || b >= 0xf0)) return 0x20;
    if (q == 0xb005) return b & ~0x20;
    return b;
}

static int defuse_bytes(u16 port, u8 *p, u32 size) {
    for (u32 i = 0; i < size; i++) {
        int v = defuse((u16)(port + i), p[i]);
        if (v < 0) return 0;
        p[i] = (u8)v;
    }
    return 1;
}

/* A PCI address (a 32-bit write to 0xcf8) that selects the PIIX4 PM function's PMBA (0x40) or PMREGMISC (0x80)
   selects register 0 instead: a random data write there would move the PM block or switch it off, and the
   defusing above only knows it at 0xb000. */
static u32 defuse_pci_address(u32 v) {
    u32 reg = v & 0xfc;
    if ((v >> 8 & 0xffff) == 0x000b && (reg == 0x40 || reg == 0x80)) return v & ~0xfcu;   /* bus 0, 01.3 */
    return v;
}

static void port_out(u16 port, u32 size, u32 v) {
    if (port == 0xcf8 && size == 4) v = defuse_pci_address(v);
    u8 b[4] = { (u8)v, (u8)(v >> 8), (u8)(v >> 16), (u8)(v >> 24) };
    if (!defuse_bytes(port, b, size)) return;
    v = b[0] | (u32)b[1] << 8 | (u32)b[2] << 16 | (u32)b[3] << 24;
    if (size == 1) outb(port, (u8)v); else if (size == 2) outw(port, (u16)v); else outl(port, v);
}

static void port_in(u16 port, u32 size) {
    if (size == 1) (void)inb(port); else if (size == 2) (void)inw(port); else (void)inl(port);
}

static void string_io(u16 port, u32 size, int out, u8 *buf, u64 count) {
    if (out) {
        for (u64 i = 0; i < count; i++) {
            if (!defuse_bytes(port, buf + i * size, size)) return;
            if (port == 0xcf8 && size == 4) {
                u32 *a = (u32 *)(buf + i * size);
                *a = defuse_pci_address(*a);
            }
        }
        if (size == 1) __asm__ volatile("rep outsb" : "+S"(buf), "+c"(count) : "d"(port) : "memory");
        else if (size == 2) __asm__ volatile("rep outsw" : "+S"(buf), "+c"(count) : "d"(port) : "memory");
        else __asm__ volatile("rep outsl" : "+S"(buf), "+c"(count) : "d"(port) : "memory");
    } else {
        if (size == 1) __asm__ volatile("rep insb" : "+D"(buf), "+c"(count) : "d"(port) : "memory");
        else if (size == 2) __asm__ volatile("rep insw" : "+D"(buf), "+c"(count) : "d"(port) : "memory");
        else __asm__ volatile("rep insl" : "+D"(buf), "+c"(count) : "d"(port) : "memory");
    }
}

/* A DMA target address: mostly somewhere a transfer may legitimately go (the scratch half of RAM), else past RAM,
   in the MMIO hole, just below 2^64 (so address + length wraps), or the descriptor itself. */
static u64 dma_address(u64 *s, const struct params *pr, u64 scratch, u64 desc) {
    switch (next(s) % 8) {
    case 0: case 1: case 2: return scratch + next(s) % (pr->ram_end - scratch);
    case 3: return pr->ram_end + next(s) % 0x100000;
    case 4: return 0xC0000000ul + next(s) % 0x40000000ul;
    case 5: return 0xFFFFFFFFFFFFFFFFul - next(s) % 0x1000;
    case 6: return desc + next(s) % 16;
    default: return next(s);
    }
}

static u32 dma_length(u64 *s, const struct params *pr) {
    switch (next(s) % 6) {
    case 0: return 0;
    case 1: return 0xFFFFFFFFu - (u32)(next(s) % 16);
    case 2: return (u32)(pr->ram_end / 2 + next(s) % pr->ram_end);
    default: return (u32)(next(s) % 4096);
    }
}

static void fire_dma(u64 *s, const struct params *pr, u64 cpu, struct counts *c) {
    u64 scratch = pr->ram_end / 2;
    volatile struct dma_access *d = (volatile struct dma_access *)(scratch + cpu * 0x1000 + (next(s) % 8) * 8);
    u32 control = (u32)next(s) & 0x3f;
    control |= (next(s) % 4 ? (u32)(next(s) % 0x40) : (u32)next(s) & 0xffff) << 16;   /* a real key, or any */
    u64 address = dma_address(s, pr, scratch, (u64)d);
    u32 length = dma_length(s, pr);
    if (address < scratch)                        /* RAM below scratch holds the guest itself: aim above it */
        address = scratch + address % (pr->ram_end - scratch);
    c->dma++;
    switch (next(s) % 10) {
    case 0:   /* a descriptor the VMM cannot read: past RAM, straddling its end, in the hole, high half set */
        outl(FW_DMA_HI, be32((u32)(next(s) % 3)));
        outl(FW_DMA_LO, be32((u32)(next(s) % 2 ? pr->ram_end - 8 : 0xC0000000u + (u32)(next(s) % 0x1000))));
        c->dma_untouched++;
        return;
    case 1:   /* only the high half: the next low write starts from it (or another vCPU's) */
        outl(FW_DMA_HI, be32((u32)next(s)));
        return;
    case 2: { /* the string form: rep outsl of the same descriptor address, one transfer per element */
        d->control = be32(control); d->length = be32(length); d->address = be64(address);
        u32 twice[2] = { be32((u32)(u64)d), be32((u32)(u64)d) };
        const u32 *p = twice; u64 n = 2;
        __asm__ volatile("rep outsl" : "+S"(p), "+c"(n) : "d"((u16)FW_DMA_LO) : "memory");
        c->dma_untouched++;
        return;
    }
    default:
        break;
    }
    d->control = be32(control); d->length = be32(length); d->address = be64(address);
    outl(FW_DMA_LO, be32((u32)(u64)d));
    u32 back = be32(d->control);
    if (back == 0) c->dma_ok++;
    else if (back == DMA_ERROR) c->dma_err++;
    else c->dma_untouched++;   /* the descriptor was the transfer's target, or another vCPU raced on it */
}

/* The selector of fw_cfg file `etc/vmfwupdate` from the file directory (read by DMA: atomic against the other
   vCPUs' port hammering, retried if one of their stray high-half writes spoils it); 0 when absent. */
static u16 find_vmfwupdate(const struct params *pr, u64 cpu) {
    u8 *dir = (u8 *)(pr->ram_end / 2 + 0x200000 + cpu * 0x2000);
    volatile struct dma_access *d = (volatile struct dma_access *)(pr->ram_end / 2 + 0x1F0000 + cpu * 64);
    for (int tries = 0; tries < 20; tries++) {
        outl(FW_DMA_HI, 0);
        if (dma_at(d, DMA_SELECT | DMA_READ | (0x19u << 16), (u64)dir, 0x2000) != 0) continue;
        u32 n = be32(*(u32 *)dir);
        for (u32 i = 0; i < n && 4 + (i + 1) * 64 <= 0x2000; i++) {
            const u8 *e = dir + 4 + i * 64;
            const char *want = "etc/vmfwupdate";
            int j = 0;
            while (want[j] && e[8 + j] == (u8)want[j]) j++;
            if (!want[j] && !e[8 + j]) return (u16)(e[4] << 8 | e[5]);
        }
        return 0;
    }
    return 0;
}

/* A random vmfwupdate request: a 32-byte record (control, image address, size: sometimes plausible, mostly not)
   written whole or from an offset (SKIP then WRITE), by DMA. A reset later may try to boot what it names. */
static void vmfwupdate_op(u64 *s, const struct params *pr, u64 cpu, u16 sel, struct counts *c) {
    u64 scratch = pr->ram_end / 2;
    u64 *rec = (u64 *)(scratch + 0x1E0000 + cpu * 64);
    volatile struct dma_access *d = (volatile struct dma_access *)(scratch + 0x1F0000 + cpu * 64 + 32);
    u64 controls[4] = { 1ul << 32, 0, 1, next(s) };
    rec[0] = next(s);
    rec[1] = controls[next(s) % 4];
    rec[2] = next(s) % 2 ? scratch + next(s) % (pr->ram_end - scratch) : next(s);
    rec[3] = next(s) % 2 ? next(s) % 0x10000 : next(s);
    u32 off = next(s) % 4 ? 0 : (u32)(next(s) % 40);
    u32 len = next(s) % 4 ? 32 - (off < 32 ? off : 32) : (u32)(next(s) % 64);
    c->vmfw++;
    u32 ctl = off ? dma_at(d, DMA_SELECT | DMA_SKIP | ((u32)sel << 16), 0, off) : 0;
    ctl |= dma_at(d, (off ? 0 : DMA_SELECT | ((u32)sel << 16)) | DMA_WRITE, (u64)rec, len);
}

static void one_op(u64 *s, const struct params *pr, u64 cpu, struct counts *c, u8 *buf, u16 vmf) {
    u64 r = next(s);
    u32 size = 1u << (next(s) % 3);
    u16 port = (r & 1) ? claimed[next(s) % NCLAIMED] + (u16)(next(s) % 4) : (u16)next(s);
    c->ops++;
    switch ((r >> 1) % 10) {
    case 0: case 1: case 2:
        c->port++;
        if (next(s) & 1) port_out(port, size, (u32)next(s)); else port_in(port, size);
        break;
    case 3: case 4: {
        u64 n = 1 + next(s) % 64;
        for (u64 i = 0; i < n * size; i += 8) *(u64 *)(buf + i) = next(s);   /* one draw per 8 bytes: the guest's
                                                                                  code runs emulated here */
        c->string++;
        string_io(port, size, (int)(next(s) & 1), buf, n);
        break;
    }
    case 5: case 6: case 7:
        fire_dma(s, pr, cpu, c);
        break;
    case 8:
        if (vmf && next(s) % 2) vmfwupdate_op(s, pr, cpu, vmf, c); else fire_dma(s, pr, cpu, c);
        break;
    default: {
        u16 key = (u16)(next(s) % 4 ? next(s) % 0x40 : next(s));
        outw(FW_SEL, key);
        c->fwread++;
        string_io(FW_DATA, 1, 0, buf, 1 + next(s) % 256);
        break;
    }
    }
}

static void sweep(u8 *buf) {
    for (u32 p = 0; p <= 0xffff; p++)
        for (u32 size = 1; size <= 4; size <<= 1) {
            port_in((u16)p, size);
            port_out((u16)p, size, 0);
            string_io((u16)p, size, 0, buf, 2);
        }
}

static void reset_now(u64 *s) {
    switch (next(s) % 4) {
    case 0: outb(0xcf9, 0x06); break;
    case 1: outb(0x64, 0xfe); break;
    case 2: outb(0x92, 0x01); break;
    default: {   /* a triple fault: an empty IDT, then an exception */
        struct { u16 limit; u64 base; } __attribute__((packed)) idt = { 0, 0 };
        __asm__ volatile("lidt %0; ud2" : : "m"(idt));
    }
    }
    for (;;) __asm__ volatile("hlt");
}

static void report(const struct params *pr) {
    outb(0x3fb, 0x03); outb(0x3f9, 0x00); outb(0x3fc, 0x00);   /* undo whatever the hammering did to COM1 */
    struct counts t = {0};
    for (u64 i = 0; i < pr->ncpus; i++) {
        t.ops += COUNTS[i].ops; t.port += COUNTS[i].port; t.string += COUNTS[i].string; t.dma += COUNTS[i].dma;
        t.dma_ok += COUNTS[i].dma_ok; t.dma_err += COUNTS[i].dma_err; t.dma_untouched += COUNTS[i].dma_untouched;
        t.fwread += COUNTS[i].fwread; t.vmfw += COUNTS[i].vmfw;
    }
    puts_("hostile ops="); putdec(t.ops); puts_(" port="); putdec(t.port); puts_(" string="); putdec(t.string);
    puts_(" dma="); putdec(t.dma); puts_(" dma_ok="); putdec(t.dma_ok); puts_(" dma_err="); putdec(t.dma_err);
    puts_(" dma_untouched="); putdec(t.dma_untouched); puts_(" fwread="); putdec(t.fwread);
    puts_(" vmfw="); putdec(t.vmfw); putc_('\n');
}

int main(u64 cpu) {
    static const struct params forever = { HOSTILE_MAGIC, 1, 0, 64 << 20, 0, 0, 1, 0 };
    const struct params *pr = (const struct params *)PARAMS_GPA;
    if (pr->magic != HOSTILE_MAGIC) pr = &forever;   /* (the page's counts are then unused: ops never end) */
    volatile u64 *gen = (volatile u64 *)GEN_GPA;
    u64 g = *gen;
    u64 s = pr->seed * 0x9E3779B97F4A7C15ul + g * 0xBF58476D1CE4E5B9ul + (cpu + 1) * 0x94D049BB133111EBul;
    s ^= s >> 31; s *= 0xBF58476D1CE4E5B9ul; s ^= s >> 29;   /* splitmix64's finaliser: every input bit counts */
    s |= 1;
    int resetting = (pr->mode & MODE_RESET) && cpu == 0 && g < pr->resets;
    u64 reset_at = pr->ops ? (pr->reset_after + g * 104729) % pr->ops : pr->reset_after;
    u8 *buf = (u8 *)(pr->ram_end / 2 + 0x100000 + cpu * 0x1000);   /* string I/O buffer: 64 * 4 bytes */
    struct counts *c = &COUNTS[cpu];
    u16 vmf = find_vmfwupdate(pr, cpu);
    if (pr->mode & MODE_SWEEP) sweep(buf);
    for (u64 i = 0; !pr->ops || i < pr->ops; i++) {
        if (resetting && i == reset_at) { *gen = g + 1; reset_now(&s); }
        one_op(&s, pr, cpu, c, buf, vmf);
    }
    __atomic_add_fetch(&done_cpus, 1, __ATOMIC_SEQ_CST);
    if (cpu) for (;;) __asm__ volatile("hlt");
    while (done_cpus != pr->ncpus) __asm__ volatile("pause");
    report(pr);
    for (int i = 0; i < 4; i++) buf[i] = 0;
    outl(FW_DMA_HI, 0);                  /* a high half left by the stream would (rightly) apply to this one */
    u32 ctl = dma_at((volatile struct dma_access *)(pr->ram_end / 2 + 0x80000), DMA_SELECT | DMA_READ, (u64)buf, 4);
    int good = ctl == 0 && buf[0] == 'Q' && buf[1] == 'E' && buf[2] == 'M' && buf[3] == 'U';
    puts_(good ? "fw_cfg still serves QEMU\n" : "fw_cfg broken\n");
    return good ? 0x10 : 0x11;
}
