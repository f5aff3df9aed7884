/* popcnt in each form a compiler emits (64-, 32- and 16-bit registers, a memory source), checked by the guest
   itself against a table count: the result, the upper bits of the destination (a 32-bit write zero-extends, a
   16-bit write keeps bits 63:16) and the flags (ZF = source was zero; CF, PF, AF, SF, OF cleared; Intel SDM
   vol. 2B "POPCNT"). Every flag popcnt defines is set before each one, so clearing them shows.
   main returns 0x50 when every case is right (status 0xa1), else 0x60 + the first wrong case after printing it.
   Where KVM can neither run nor emulate popcnt, the first one ends the run with KVM's emulation failure. */
#include "guestlib.h"

#define ARITH_FLAGS 0x8d5UL    /* OF SF ZF AF PF CF */
#define ZF 0x40UL
#define DIRTY 0xdeadbeefdeadbeefUL

static u64 count(u64 v, int bits) {
    static const u8 nibble[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};
    u64 c = 0;
    for (int i = 0; i < bits; i += 4)
        c += nibble[(v >> i) & 15];
    return c;
}

#define POPCNT(insn, out, flags, in)                                                                  \
    __asm__ volatile("pushq %[all]\n\tpopfq\n\t" insn "\n\tpushfq\n\tpopq %[f]"                    \
                     : [r] "+r"(out), [f] "=&r"(flags) : [v] in, [all] "i"(ARITH_FLAGS) : "cc", "memory")

static int check(int n, u64 got, u64 want, u64 flags, u64 src_zero) {
    u64 want_flags = src_zero ? ZF : 0;
    if (got == want && (flags & ARITH_FLAGS) == want_flags)
        return 0;
    puts_("popcnt case "); putdec((u64)n); puts_(": result "); puthex(got); puts_(" want "); puthex(want);
    puts_(", flags "); puthex(flags & ARITH_FLAGS); puts_(" want "); puthex(want_flags); puts_("\n");
    return 1;
}

int main(void) {
    static const u64 values[] = {0, 1, 0x8000000000000001UL, ~0UL, 0x123456789abcdef0UL, 0xffff0000UL, 0x8000UL,
                                 0xffffffff00000000UL};
    int n = 0;
    for (u32 i = 0; i < sizeof values / sizeof values[0]; i++) {
        u64 v = values[i], r, f;
        volatile u64 mem = v;
        r = 0;
        POPCNT("popcnt %[v], %[r]", r, f, "r"(v));
        if (check(n++, r, count(v, 64), f, v == 0)) return 0x60 + n - 1;
        r = 0;
        POPCNT("popcnt %[v], %[r]", r, f, "m"(mem));
        if (check(n++, r, count(v, 64), f, v == 0)) return 0x60 + n - 1;
        r = DIRTY;
        POPCNT("popcnt %k[v], %k[r]", r, f, "r"(v));
        if (check(n++, r, count(v, 32), f, (u32)v == 0)) return 0x60 + n - 1;
        r = DIRTY;
        POPCNT("popcnt %w[v], %w[r]", r, f, "r"(v));
        if (check(n++, r, (DIRTY & ~0xffffUL) | count(v, 16), f, (u16)v == 0)) return 0x60 + n - 1;
    }
    puts_("popcnt ok\n");
    return 0x50;
}
