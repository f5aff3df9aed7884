/* Entry for the UEFI probe: main(r12) like a SEC core that takes its config pointer in R12; exit via 0xf4. */
    .code64
    .text
    .globl _start
_start:
    mov $0x80000, %rsp
    mov %r12, %rdi
    call main
    out %al, $0xf4
1:  hlt
    jmp 1b
