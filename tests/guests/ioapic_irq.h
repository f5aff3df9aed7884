/* For 64-bit assembly guests that take one interrupt through the IOAPIC (gas macros; #include it):
     irq_to_vector_0x30 PIN, HANDLER   masks both 8259s, points IDT gate 0x30 (a present 64-bit interrupt gate,
                                       CS 0x08) at HANDLER, software-enables the LAPIC and routes IOAPIC pin PIN
                                       to vector 0x30 (fixed, edge, unmasked, APIC 0); needs `idt` and `idtr`;
     idt_and_stack                     the IDT (256 16-byte gates), its IDTR and a 1 KiB stack ending at stack_top. */
    .macro irq_to_vector_0x30 pin, handler
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    lea \handler(%rip), %rax
    lea idt+0x30*16(%rip), %rdi
    mov %ax, (%rdi)
    movw $0x08, 2(%rdi)
    movw $0x8e00, 4(%rdi)
    shr $16, %rax
    mov %ax, 6(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    lidt idtr(%rip)
    mov $0xfee000f0, %rbx       /* LAPIC spurious vector register */
    movl $0x1ff, (%rbx)
    mov $0xfec00000, %rbx       /* IOAPIC IOREGSEL/IOWIN: redirection entry \pin, high dword then low */
    movl $(0x11 + 2 * \pin), (%rbx)
    movl $0, 0x10(%rbx)
    movl $(0x10 + 2 * \pin), (%rbx)
    movl $0x30, 0x10(%rbx)
    .endm

    .macro idt_and_stack
    .balign 16
idtr: .word 256 * 16 - 1
      .quad idt
    .balign 16
idt: .fill 256 * 16, 1, 0
    .fill 1024, 1, 0
stack_top:
    .endm
