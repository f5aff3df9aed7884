/* Programs IOAPIC pin PIN for vector 0x30, masks the PICs and starts PIT channel 0: exits with 0x10 from the
   interrupt handler if the PIT's IRQ0 arrives on that pin (the MADT and MP table say pin 2), else spins. */
#ifndef PIN
#define PIN 2
#endif
    .code64
    .globl _start
_start:
    lea stack_top(%rip), %rsp
    mov $0xff, %al
    out %al, $0x21              /* mask both 8259s: only the IOAPIC may deliver */
    out %al, $0xa1
    lea handler(%rip), %rax     /* IDT gate 0x30: present 64-bit interrupt gate, CS 0x08 */
    lea idt+0x30*16(%rip), %rdi
    mov %ax, (%rdi)
    movw $0x08, 2(%rdi)
    movw $0x8e00, 4(%rdi)
    shr $16, %rax
    mov %ax, 6(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    lidt idtr(%rip)
    mov $0xfee000f0, %rbx       /* LAPIC spurious vector register: software enable */
    movl $0x1ff, (%rbx)
    mov $0xfec00000, %rbx       /* IOAPIC redirection entry PIN: vector 0x30, fixed, edge, unmasked, APIC 0 */
    movl $(0x11 + 2 * PIN), (%rbx)
    movl $0, 0x10(%rbx)
    movl $(0x10 + 2 * PIN), (%rbx)
    movl $0x30, 0x10(%rbx)
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
    .balign 16
idtr: .word 256 * 16 - 1
      .quad idt
    .balign 16
idt: .fill 256 * 16, 1, 0
    .fill 1024, 1, 0
stack_top:
