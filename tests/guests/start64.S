/* Entry for C test guests in 64-bit mode: call main(rdi = vCPU index), then exit through port 0xf4 with
   main's return value (so the VMM's status is (ret << 1) | 1). The loader sets the stack. */
    .code64
    .text
    .globl _start
_start:
    and $-16, %rsp
    call main
    out %al, $0xf4
1:  hlt
    jmp 1b
