/* Resets the machine the way Linux's reboot=k does: wait for the i8042 input buffer, then 0xFE to port 0x64. */
    .code64
    .globl _start
_start:
    mov $0x64, %dx
1:  in %dx, %al
    test $0x02, %al
    jnz 1b
    mov $0xfe, %al
    out %al, %dx
2:  pause                        /* not reached: the VMM stops the machine */
    jmp 2b
