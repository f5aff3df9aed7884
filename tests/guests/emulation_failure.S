/* crc32, which neither this project's nested KVM nor pyvmm's emulator finishes: exercises the fatal-exit path
   (status 3, the register dump and a line saying pyvmm could not emulate it). */
    .code64
    .globl _start
_start:
    mov $0xff, %rax
    crc32 %eax, %ebx
    mov %bl, %al
    out %al, $0xf4
    hlt
