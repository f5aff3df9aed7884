/* Stage 2: the firmware the guest brought. It prints the note stage 1 left in RAM and powers off (ACPI S5). */
#include "common.h"

int main(void) {
    puts_("stage 2: the new firmware runs; note from stage 1: ");
    for (int i = 0; i < 64 && NOTE[i]; i++) putc_(NOTE[i]);
    putc_('\n');
    outw(0xB004, 0 << 10 | 1 << 13);   /* PM1a_CNT at PIIX4 PMBA 0xB000 + 4; SLP_TYP = S5 (0 in QEMU's DSDT), SLP_EN */
    for (;;) __asm__ volatile("hlt");
}
