/* A 64 KiB firmware ROM: the processor must start at its last 16 bytes (0xFFFFFFF0, CS base 0xFFFF0000) in the
   x86 reset state. It checks CR0, loads the x87 control word from the ROM (fldcw: where KVM cannot emulate it,
   pyvmm's emulator reads the operand from the ROM), that the ROM ignores writes through its 4 GiB window (CS) and through the alias
   at 0xF0000 (DS = 0xF000), that both show the same byte, sends "rom ok" to COM1 and "dbg" to port 0x402, and exits
   through port 0xf4 with 0x30 (a failed check exits with its own code, 0x31-0x37). Linked at 0: an offset in
   the image is an offset in the CS segment. With RESET_FIRST it first resets through 0xCF9 once (a mark in RAM
   tells the second boot), so the checks run again on a relaunched machine. */
    .code16
    .globl _start
_start:
#ifdef RESET_FIRST
    xor %ax, %ax                    /* first boot: leave a mark in RAM (kept across a reset) and reset */
    mov %ax, %ds
    cmpb $0x5a, 0x600
    je 1f
    movb $0x5a, 0x600
    mov $0xcf9, %dx
    mov $0x06, %al
    out %al, %dx
    hlt
1:
#endif
    mov %cr0, %eax
    cmp $0x60000010, %eax
    jne fail1
    cmpb $0x5a, %cs:marker
    jne fail2
    xor %ax, %ax                    /* x87 control word loaded from the ROM (OVMF's SEC does this too) */
    mov %ax, %ds
    fninit
    fldcw %cs:fpucw
    fnstcw 0x500
    cmpw $0x027f, 0x500
    jne fail7
    movb $0x00, %cs:marker          /* a write to the read-only window: ignored */
    movb $0x11, %cs:marker
    cmpb $0x5a, %cs:marker
    jne fail3
    mov $0xf000, %ax
    mov %ax, %ds
    cmpb $0x5a, marker              /* 0xF0000 + offset: the alias of the ROM's top 64 KiB */
    jne fail4
    movb $0x22, marker
    cmpb $0x5a, marker
    jne fail5
    mov $0x402, %dx                 /* the debug console answers 0xE9 and takes bytes */
    in %dx, %al
    cmp $0xe9, %al
    jne fail6
    mov $'d', %al
    out %al, %dx
    mov $'b', %al
    out %al, %dx
    mov $'g', %al
    out %al, %dx
    mov $msg, %si
1:  mov %cs:(%si), %al
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    inc %si
    jmp 1b
2:  mov $0x30, %al
    jmp done
fail1: mov $0x31, %al
    jmp done
fail2: mov $0x32, %al
    jmp done
fail3: mov $0x33, %al
    jmp done
fail4: mov $0x34, %al
    jmp done
fail5: mov $0x35, %al
    jmp done
fail6: mov $0x36, %al
    jmp done
fail7: mov $0x37, %al
done:
    out %al, $0xf4
    hlt
msg: .asciz "rom ok\n"
marker: .byte 0x5a
fpucw: .word 0x027f

    .org 0xfff0
reset_vector:
    jmp _start
    .org 0xffff
    .byte 0
