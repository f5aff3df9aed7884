/* Programs IOAPIC pin PIN for vector 0x30, masks the PICs and starts PIT channel 0: exits with 0x10 from the
   interrupt handler if the PIT's IRQ0 arrives on that pin (the MADT and MP table say pin 2), else spins. */
#include "ioapic_irq.h"
#ifndef PIN
#define PIN 2
#endif
    .code64
    .globl _start
_start:
    lea stack_top(%rip), %rsp
    irq_to_vector_0x30 PIN, handler
    mov $0x34, %al              /* PIT channel 0, lo/hi, mode 2, divisor 1193: every millisecond */
    out %al, $0x43
    mov $0xa9, %al
    out %al, $0x40
    mov $0x04, %al
    out %al, $0x40
    sti
1:  hlt
    jmp 1b
handler:
    mov $0x10, %al
    out %al, $0xf4
    jmp handler
    idt_and_stack
