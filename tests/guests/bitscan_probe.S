/* Does the hypervisor run lzcnt itself as bsr? Exit value: lzcnt of 0xf0 (24 on a CPU with LZCNT; 7 where the
   instruction runs as bsr, which KVM's instruction emulator does with the F3 prefix ignored). */
    .code64
    .globl _start
_start:
    mov $0xf0, %eax
    lzcnt %eax, %ebx
    mov %bl, %al
    out %al, $0xf4
    hlt
