/* Sends the CPUID feature words it sees on COM1 as raw little-endian bytes (leaf 1 ECX, EDX; leaf 7.0 EBX, ECX),
   so a test can compare them with what --cpu asked KVM to offer. */
    .code64
    .globl _start
_start:
    mov $1, %eax
    xor %ecx, %ecx
    cpuid
    mov %ecx, %eax
    call send32
    mov %edx, %eax
    call send32
    mov $7, %eax
    xor %ecx, %ecx
    cpuid
    push %rcx
    mov %ebx, %eax
    call send32
    pop %rax
    call send32
    mov $0x10, %al
    out %al, $0xf4
    hlt
send32:                       /* eax -> 4 bytes on COM1 THR, low byte first */
    mov $4, %ecx
    mov $0x3f8, %dx
1:  out %al, %dx
    shr $8, %eax
    loop 1b
    ret
