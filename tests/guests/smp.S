/* Runs on every vCPU (RDI = index): each prints "cpuN", bumps a shared counter; the last one exits with the count. */
#ifndef NCPUS
#define NCPUS 2
#endif
    .code64
    .globl _start
_start:
    mov %rdi, %r8
    mov $0x1, %eax               /* serialise the output with a spinlock */
1:  xchg %eax, lock_word(%rip)
    test %eax, %eax
    jnz 1b
    lea msg(%rip), %rsi
2:  lodsb
    test %al, %al
    jz 3f
    mov $0x3f8, %dx
    out %al, %dx
    jmp 2b
3:  mov %r8b, %al
    add $'0', %al
    out %al, %dx
    mov $'\n', %al
    out %al, %dx
    movl $0, lock_word(%rip)
    mov $1, %eax
    lock xadd %eax, counter(%rip)
    inc %eax
    cmp $NCPUS, %eax
    jne 4f
    out %al, $0xf4               /* status (NCPUS << 1) | 1 */
4:  hlt
    jmp 4b
msg: .asciz "hello from cpu"
    .balign 8
lock_word: .long 0
counter: .long 0
