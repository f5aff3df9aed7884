/* Programs the PIT with FIRST choosing the guest's very first access to ports 0x40-0x43/0x61 (the access that
   makes pyvmm create the in-kernel PIT), then checks the PIT behaves. Exits 0x10 through port 0xf4 on success,
   a small failure code otherwise.
     FIRST=1: OUT of a control word (channel 0, lo/hi, mode 2, count 0xffff), IRQ0 arrives on IOAPIC pin 2,
              then three latched reads of channel 0 where the counter goes down;
     FIRST=2: IN from 0x61: gate 2 and speaker data clear, bits 2,3,6,7 clear; a write of 3 reads back;
     FIRST=3: OUT to 0x61 enabling gate 2, then channel 2 one-shot (mode 0): OUT2 (0x61 bit 5) is low right
              after the count load and goes high;
     FIRST=4: as 1, with the control word written by OUTSB (KVM's emulator retires it before it exits);
     FIRST=5: as 3, with the 0x61 write made by OUTSB;
     FIRST=6: as 2, with the 0x61 read made by INSB;
     FIRST=7: a 2-byte OUT to 0x43 (no PIT device takes it), then exit;
     FIRST=8: IN of channel 2's counter (never loaded: counting down from 0x10000 since the PIT was made): fails
              with 7 if it reads 0 (1 time in 256 it truly is; a lost read reads 0 every time);
     FIRST=9: as 2, the IN right after STI (in its interrupt shadow, which pyvmm puts back when the IN runs again). */
#include "ioapic_irq.h"
#ifndef FIRST
#define FIRST 1
#endif
#define OK 0x10
    .code64
    .globl _start
_start:
    lea stack_top(%rip), %rsp
    cld
#if FIRST == 1 || FIRST == 4
    irq_to_vector_0x30 2, handler
#if FIRST == 1
    mov $0x34, %al              /* channel 0, lo/hi, mode 2 */
    out %al, $0x43
#else
    lea cw_mode2(%rip), %rsi
    mov $0x43, %dx
    outsb
#endif
    mov $0xff, %al              /* count 0xffff: a tick every 55 ms */
    out %al, $0x40
    out %al, $0x40
    sti
1:  hlt
    cmpb $0, ticked(%rip)
    je 1b
    cli
    call latch0
    mov %eax, %ebx              /* A */
    call latch0
    mov %eax, %ecx              /* B */
    cmp %ebx, %ecx
    jb ok                       /* B < A */
    call latch0                 /* A to B wrapped: C < B */
    cmp %ecx, %eax
    jb ok
    mov $1, %al
    jmp done
latch0:                         /* channel 0's count, latched, in %eax */
    xor %eax, %eax
    out %al, $0x43
    in $0x40, %al
    mov %al, %dl
    in $0x40, %al
    shl $8, %eax
    mov %dl, %al
    movzwl %ax, %eax
    ret
handler:
    movb $1, ticked(%rip)
    push %rax
    mov $0xfee000b0, %rax       /* LAPIC EOI */
    movl $0, (%rax)
    pop %rax
    iretq
#elif FIRST == 2 || FIRST == 6 || FIRST == 9
#if FIRST == 9
    sti                         /* the IN runs in STI's interrupt shadow */
    in $0x61, %al
    cli
#elif FIRST == 2
    in $0x61, %al
#else
    lea buf(%rip), %rdi
    mov $0x61, %dx
    insb
    mov buf(%rip), %al
#endif
    test $0xcf, %al             /* gate 2, speaker data and bits 2,3,6,7 clear (bits 4, 5: refresh, OUT2) */
    mov $2, %bl
    jnz fail
    mov $3, %al
    out %al, $0x61
    in $0x61, %al
    and $0x0f, %al
    cmp $3, %al
    mov $3, %bl
    jne fail
    mov $OK, %al
    jmp done
fail:
    mov %bl, %al
    jmp done
#elif FIRST == 3 || FIRST == 5
#if FIRST == 3
    mov $1, %al                 /* gate 2 on, speaker data off */
    out %al, $0x61
#else
    lea gate_on(%rip), %rsi
    mov $0x61, %dx
    outsb
#endif
    mov $0xb0, %al              /* channel 2, lo/hi, mode 0 */
    out %al, $0x43
    mov $0xff, %al              /* count 0xffff: OUT2 rises after 55 ms */
    out %al, $0x42
    out %al, $0x42
    in $0x61, %al
    test $0x20, %al
    mov $4, %bl
    jnz fail3                   /* OUT2 already high */
    test $1, %al
    mov $5, %bl
    jz fail3                    /* gate 2 lost */
    mov $100000000, %ecx
1:  in $0x61, %al
    test $0x20, %al
    jnz 2f
    dec %ecx
    jnz 1b
    mov $6, %bl
    jmp fail3                   /* OUT2 never rose */
2:  mov $OK, %al
    jmp done
fail3:
    mov %bl, %al
    jmp done
#elif FIRST == 7
    mov $0x34, %ax
    out %ax, $0x43
    mov $OK, %al
#elif FIRST == 8
    in $0x42, %al
    test %al, %al
    mov $7, %al
    jz done
    mov $OK, %al
#endif
ok:
#if FIRST == 1 || FIRST == 4
    mov $OK, %al
#endif
done:
    out %al, $0xf4
    hlt
    jmp done
cw_mode2: .byte 0x34
gate_on: .byte 0x01
ticked: .byte 0
buf: .byte 0
    idt_and_stack
