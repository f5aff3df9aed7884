/* Every vCPU (RDI = index) reads port 0x61 at once as its first instruction that touches the PIT, so the first
   accesses race: each must read 0x61 as a new PIT has it (gate 2, speaker data and bits 2,3,6,7 clear). The last
   vCPU to finish exits 0x10 if all did, 0x01 if one did not. */
#ifndef NCPUS
#define NCPUS 4
#endif
    .code64
    .globl _start
_start:
    in $0x61, %al
    test $0xcf, %al
    jz 1f
    movb $1, bad(%rip)
1:  mov $1, %eax
    lock xadd %eax, counter(%rip)
    inc %eax
    cmp $NCPUS, %eax
    jne 3f
    mov $0x10, %al
    cmpb $0, bad(%rip)
    je 2f
    mov $0x01, %al
2:  out %al, $0xf4
3:  hlt
    jmp 3b
    .balign 8
counter: .long 0
bad: .byte 0
