/* Every vCPU adds 1 to both halves of a shared 16-byte counter COUNT times with lock cmpxchg16b (retrying on a
   miss), then signs off; vCPU 0 waits for all and exits with 0x11 if both halves are CPUS * COUNT, else 0x22. */
#ifndef COUNT
#define COUNT 200
#endif
#ifndef CPUS
#define CPUS 2
#endif
    .code64
    .globl _start
_start:                         /* rdi = vCPU index */
    mov $COUNT, %r8d
1:  mov counter(%rip), %rax
    mov counter+8(%rip), %rdx
2:  lea 1(%rax), %rbx
    lea 1(%rdx), %rcx
    lock cmpxchg16b counter(%rip)   /* on a miss RDX:RAX holds the current value: retry with it */
    jnz 2b
    dec %r8d
    jnz 1b
    lock incl done(%rip)
    test %edi, %edi
    jnz 9f
3:  cmpl $CPUS, done(%rip)
    pause
    jne 3b
    mov $0x22, %al
    cmpq $CPUS * COUNT, counter(%rip)
    jne 4f
    cmpq $CPUS * COUNT, counter+8(%rip)
    jne 4f
    mov $0x11, %al
4:  out %al, $0xf4
9:  cli
    hlt
    jmp 9b
    .balign 16
counter: .quad 0, 0
done: .long 0
