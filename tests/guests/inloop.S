/* COUNT `in` instructions from PORT (exit cost of reads), then debug-exit with the last byte read. */
#ifndef COUNT
#define COUNT 100000
#endif
#ifndef PORT
#define PORT 0x80
#endif
    .code64
    .globl _start
_start:
    mov $COUNT, %ecx
    mov $PORT, %dx
1:  in %dx, %al
    dec %ecx
    jnz 1b
    out %al, $0xf4
    hlt
