/* Stage 1: a loader that brings its own firmware through vmfwupdate. Adapt it: where the new IGVM comes from
   (here the fw_cfg file opt/org.example/firmware; a real loader reads a disk or a UKI add-on), where it is
   put (IMAGE_ADDR: RAM that no page of the new IGVM targets), and what it leaves for the new firmware (NOTE).

   The interface (fw_cfg file etc/vmfwupdate, 32 bytes, little-endian):
     +0 u64 capabilities (read-only; bit 32 = FORMAT_IGVM)   +8  u64 control (bit 0 DISABLE, bit 32 FORMAT_IGVM)
     +16 u64 fw_image_addr                                   +24 u64 fw_image_size
   Reads return what the VMM accepted; after the write, any system reset launches the image. */
#include "common.h"

#define FORMAT_IGVM (1UL << 32)
#define IMAGE_ADDR 0x4000000UL                 /* 64 MiB: run with -m 256M or more */

static int fail(const char *why) { puts_("stage 1: "); puts_(why); putc_('\n'); return 1; }

int main(void) {
    u32 size, n;
    u16 dev = fw_find("etc/vmfwupdate", &size);
    if (!dev || size != 32) return fail("no etc/vmfwupdate (pyvmm --no-vmfwupdate?)");
    u64 f[4];
    fw_dma(DMA_SELECT | DMA_READ | ((u32)dev << 16), f, 32);
    if (!(f[0] & FORMAT_IGVM)) return fail("the VMM does not take IGVM images");
    u16 img = fw_find("opt/org.example/firmware", &n);
    if (!img) return fail("no opt/org.example/firmware to install");
    if (fw_dma(DMA_SELECT | DMA_READ | ((u32)img << 16), (void *)IMAGE_ADDR, n)) return fail("cannot read it");

    const char *note = "hello from stage 1";
    for (int i = 0; ; i++) { NOTE[i] = note[i]; if (!note[i]) break; }

    u64 req[4] = {0, FORMAT_IGVM, IMAGE_ADDR, n};   /* all 32 bytes at once: the format bit comes with them */
    if (fw_dma(DMA_SELECT | DMA_WRITE | ((u32)dev << 16), req, 32)) return fail("write refused");
    fw_dma(DMA_SELECT | DMA_READ | ((u32)dev << 16), f, 32);
    if (f[2] != IMAGE_ADDR || f[3] != n) return fail("request not accepted (see pyvmm's stderr)");
    puts_("stage 1: requested "); puthex(n); puts_(" bytes at "); puthex(IMAGE_ADDR); puts_("; resetting\n");
    outb(0xcf9, 6);                                  /* the FADT reset register: any reset source works */
    for (;;) __asm__ volatile("pause");
}
