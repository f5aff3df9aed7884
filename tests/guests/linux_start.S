/* Entry of the Linux probe kernel: the 64-bit boot protocol hands the zero page in RSI; main(rsi). If main
   returns, exit through port 0xf4 with its value. The stack is ours: the protocol gives none. */
    .code64
    .text
    .globl _start
_start:
    lea stack_top(%rip), %rsp
    mov %rsi, %rdi
    call main
    out %al, $0xf4
1:  hlt
    jmp 1b
    .bss
    .balign 16
    .skip 16384
stack_top:
