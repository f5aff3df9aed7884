/* An SEV-SNP guest for pyvmm's non-confidential launch, entered from its VMSA in 32-bit protected mode.
   It checks what the VMSA and the launch promised, and reports through the debug-exit port:
   0x21 (status 0x43) all good; 0x30 + n the n-th check failed.
   1 EBP and EDI hold the values the VMSA gave them; ESP too.
   2 the CPUID page (CPUID_PAGE) has a count in 1..64.
   3 its entry for leaf 0 exists and equals what CPUID 0 returns here (EAX, EBX, ECX, EDX).
   4 its entry for leaf 0x80000000 equals CPUID 0x80000000 (EAX, EBX, ECX, EDX).
   5 the secrets page (SECRETS_PAGE), which the file filled with 0xEE bytes, reads as zeroes.
   6 the unmeasured page (UNMEASURED_PAGE) holds the file's bytes ("UNME").
   7 CPUID 0x8000001F (SME/SEV) reads EAX = 0, so Linux would not touch the SEV status MSR. */
    .code32
    .globl _start
_start:
    mov $0x31, %al
    cmp $0x600DF00D, %ebp
    jne fail
    cmp $0x5EC0DE00, %edi
    jne fail
    cmp $STACK_TOP, %esp
    jne fail

    mov $0x32, %al
    mov CPUID_PAGE, %ecx
    test %ecx, %ecx
    jz fail
    cmp $64, %ecx
    ja fail

    mov $0x33, %al
    xor %edx, %edx
    call check_leaf
    mov $0x34, %al
    mov $0x80000000, %edx
    call check_leaf

    mov $0x35, %al
    mov $SECRETS_PAGE, %esi
    mov $1024, %ecx
1:  cmpl $0, (%esi)
    jne fail
    add $4, %esi
    loop 1b

    mov $0x36, %al
    cmpl $0x454d4e55, UNMEASURED_PAGE
    jne fail

    mov $0x80000000, %eax
    cpuid
    cmp $0x8000001f, %eax
    jb 5f
    mov $0x8000001f, %eax
    xor %ecx, %ecx
    cpuid
    test %eax, %eax
    mov $0x37, %al
    jnz fail
5:
    mov $0x21, %al
fail:
    out %al, $0xf4
    hlt
    jmp fail

/* edx = leaf; compares the table entry with CPUID (subleaf 0); on a mismatch jumps to fail with al intact. */
check_leaf:
    mov %eax, %ebx                  /* keep the failure code */
    mov $CPUID_PAGE + 16, %esi
    mov CPUID_PAGE, %ecx
2:  cmp %edx, (%esi)
    je 3f
    add $48, %esi
    loop 2b
    mov %ebx, %eax
    jmp fail
3:  push %ebx
    mov %edx, %eax
    xor %ecx, %ecx
    cpuid
    cmp %eax, 0x18(%esi)
    jne 4f
    cmp %ebx, 0x1c(%esi)
    jne 4f
    cmp %ecx, 0x20(%esi)
    jne 4f
    cmp %edx, 0x24(%esi)
    jne 4f
    pop %ebx
    ret
4:  pop %eax
    jmp fail
