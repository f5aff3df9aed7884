/* Stage 2: the firmware the guest brought. It prints the note stage 1 left in RAM and powers off (ACPI S5). */
#include "common.h"

int main(void) {
    puts_("stage 2: the new firmware runs; note from stage 1: ");
    for (int i = 0; i < 64 && NOTE[i]; i++) putc_(NOTE[i]);
    putc_('\n');
    outw(0x404, 5 << 10 | 1 << 13);                   /* PM1a_CNT: SLP_TYP = S5, SLP_EN */
    for (;;) __asm__ volatile("hlt");
}
