/* popcnt, which this project's nested KVM cannot emulate: exercises the fatal-exit path (status 3 + dump). */
    .code64
    .globl _start
_start:
    mov $0xff, %rax
    popcnt %rax, %rbx
    mov %bl, %al
    out %al, $0xf4
    hlt
