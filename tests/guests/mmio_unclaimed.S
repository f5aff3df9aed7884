/* Unclaimed MMIO (no RAM or device at MMIO_ADDR, in the PCI hole): COUNT 4-byte reads in a loop (the exit-cost
   benchmark), then a write and a read of each width, which must read all-ones; debug-exit with the number of reads
   that did not. */
#ifndef COUNT
#define COUNT 1
#endif
#ifndef MMIO_ADDR
#define MMIO_ADDR 0xE0000000
#endif
    .code64
    .globl _start
_start:
    mov $MMIO_ADDR, %edi
    mov $COUNT, %ecx
1:  mov (%rdi), %eax
    dec %ecx
    jnz 1b
    xor %ebx, %ebx
    movq $0x55555555, (%rdi)    /* a write is ignored */
    movb (%rdi), %al
    cmp $0xff, %al
    je 2f
    inc %ebx
2:  movw 2(%rdi), %ax
    cmp $0xffff, %ax
    je 3f
    inc %ebx
3:  movl 4(%rdi), %eax
    cmp $0xffffffff, %eax
    je 4f
    inc %ebx
4:  movq 8(%rdi), %rax
    cmp $-1, %rax
    je 5f
    inc %ebx
5:  mov %bl, %al
    out %al, $0xf4
    hlt
