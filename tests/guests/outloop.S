/* COUNT `out` instructions to PORT (the exit-cost and serial benchmarks), then debug-exit 0. */
#ifndef COUNT
#define COUNT 100000
#endif
#ifndef PORT
#define PORT 0x3f8
#endif
    .code64
    .globl _start
_start:
    mov $COUNT, %ecx
    mov $PORT, %dx
    mov $'.', %al
1:  out %al, %dx
    dec %ecx
    jnz 1b
    xor %eax, %eax
    out %al, $0xf4
    hlt
