/* 16-bit real-mode guest: prints "real mode ok" and exits with status (0x42 << 1) | 1. */
    .code16
    .globl _start
_start:
    mov $msg, %si
1:  mov (%si), %al
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    inc %si
    jmp 1b
2:  mov $0x42, %al
    out %al, $0xf4
    hlt
msg: .asciz "real mode ok\n"
