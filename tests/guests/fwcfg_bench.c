/* Reads fw_cfg item SEL (SIZE bytes) REPS times, by one DMA descriptor (MODE 0) or rep insb (MODE 1), for
   tests/bench/bench_fw_cfg.py; prints FNV-1a of the last copy's first and last 4 KiB (hashing all of it would take the slow nested guest
   a minute). Exit 0x10. */
#include "fwcfg.h"

static volatile struct dma_access desc __attribute__((aligned(16)));

int main(void) {
    u8 *buf = (u8 *)0x1000000;
    for (int i = 0; i < REPS; i++) {
        if (MODE == 0) {
            dma_at(&desc, DMA_SELECT | DMA_READ | ((u32)SEL << 16), (u64)buf, SIZE);
        } else {
            outw(FW_SEL, SEL);
            insb(FW_DATA, buf, SIZE);
        }
    }
    puts_("fnv="); puthex(fnv1a(buf, 4096)); putc_(' '); puthex(fnv1a(buf + SIZE - 4096, 4096)); putc_('\n');
    return 0x10;
}
