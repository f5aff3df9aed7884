/* Runs on page tables made of 1 GiB pages (tests/test_gib_pages.py writes them): GiB 0 identity-mapped, and the
   same GiB again at 4 GiB (PDPT entry 4), at 512 GiB (a second PDPT under PML4 entry 1) and, read-only and
   uncached, at 513 GiB. A pattern written through the identity map must read back through every alias, at
   offsets on both sides of 2 MiB boundaries; a KVM without 1 GiB pages triple-faults on the first fetch unless
   the VMM splits them. Exit 0x21 on success, 0x35 on a mismatch (port 0xf4). */
    .code64
    .globl _start
_start:
    lea offsets(%rip), %rsi
    movabs $0x5a5a1234cafe0000, %rax
1:  mov (%rsi), %rbx
    cmp $-1, %rbx
    je 3f
    lea (%rax,%rbx), %rcx           /* the value stored at an offset: the pattern plus the offset */
    mov %rcx, (%rbx)
    movabs $0x100000000, %rdx       /* 4 GiB */
    cmp %rcx, (%rdx,%rbx)
    jne 4f
    movabs $0x8000000000, %rdx      /* 512 GiB */
    cmp %rcx, (%rdx,%rbx)
    jne 4f
    movabs $0x8040000000, %rdx      /* 513 GiB */
    cmp %rcx, (%rdx,%rbx)
    jne 4f
    add $8, %rsi
    jmp 1b
3:  mov $0x21, %al
    out %al, $0xf4
    hlt
4:  mov $0x35, %al
    out %al, $0xf4
    hlt
    .balign 8
offsets:
    .quad 0x1ff8, 0x1ffff8, 0x200000, 0x3ff000, 0x1234560, 0x3dffff8, -1
