/* A TDX "reset page" for pyvmm's non-confidential TDX launch, linked at 0xFFFFF000: every vCPU enters at
   0xFFFFFFF0 in the TD start state. It checks that state and reports through the debug-exit port:
   0x21 (status 0x43) all good; 0x30 + n the n-th check failed (BSP).
   1 EBX = 48 (GPA width)   2 CR0 = 0x21 (PE, NE)   3 EFER = 0x901 (SCE, LME, NXE)   4 CS is a 32-bit code segment
   (we run)   5 the AP (ESI = 1) ran too: it stores its ESI at FLAG, the BSP (ESI = 0) waits for it. */
    .code32
    .globl _start
_start:
    test %esi, %esi
    jnz ap
    mov $0x31, %al
    cmp $48, %ebx
    jne fail
    mov %cr0, %ecx
    mov $0x32, %al
    cmp $0x21, %ecx
    jne fail
    mov %eax, %edi
    mov $0xc0000080, %ecx
    rdmsr
    xchg %eax, %edi
    mov $0x33, %al
    cmp $0x901, %edi
    jne fail
    mov $0x35, %al
    mov $50000000, %ecx             /* no PAUSE: under nested KVM every PAUSE can exit */
1:  cmpl $1, FLAG
    je 2f
    loop 1b
    jmp fail
2:  mov $0x21, %al
fail:
    out %al, $0xf4
3:  hlt
    jmp 3b
ap:
    mov %esi, FLAG
4:  cli
    hlt
    jmp 4b

    .org 0xff0
reset:
    jmp _start
    .org 0x1000
