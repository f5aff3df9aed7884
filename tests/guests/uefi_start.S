/* Entry for the UEFI probe: main(r12) like a SEC core that takes its config pointer in R12; exit via 0xf4
   (or, with EXIT_BY_RESET, by resetting the machine). */
    .code64
    .text
    .globl _start
_start:
    mov $0x80000, %rsp
    mov %r12, %rdi
    call main
#ifdef EXIT_BY_RESET
    mov $0xfe, %al              /* pulse reset through the i8042: with --no-reboot the VMM exits 0 */
    out %al, $0x64
#endif
    out %al, $0xf4
1:  hlt
    jmp 1b
