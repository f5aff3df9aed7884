/* Echoes COM1 input back as upper case until it reads 'q', then exits with status (0x21 << 1) | 1. */
    .code64
    .globl _start
_start:
    mov $0x3fd, %dx
1:  in %dx, %al                 /* LSR.DR: data ready? */
    test $0x01, %al
    jnz 2f
    pause
    jmp 1b
2:  mov $0x3f8, %dx
    in %dx, %al
    cmp $'q', %al
    je 3f
    cmp $'a', %al
    jb 4f
    cmp $'z', %al
    ja 4f
    sub $0x20, %al
4:  out %al, %dx
    mov $0x3fd, %dx
    jmp 1b
3:  mov $0x21, %al
    out %al, $0xf4
    hlt
