/* Prints a greeting on COM1 (polling LSR.THRE like a real driver) and exits through port 0xf4 with EXIT_CODE. */
#ifndef EXIT_CODE
#define EXIT_CODE 0x10
#endif
    .code64
    .globl _start
_start:
    lea msg(%rip), %rsi
1:  lodsb
    test %al, %al
    jz 3f
    mov %al, %bl
    mov $0x3fd, %dx
2:  in %dx, %al                 /* LSR: wait for THR empty */
    test $0x20, %al
    jz 2b
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    jmp 1b
3:  mov $EXIT_CODE, %al
    out %al, $0xf4
    hlt
    jmp 3b
msg: .asciz "Hello from a pyvmm guest\n"
