/* Every instruction pyvmm's emulator finishes (vmm/emulate), its results, flags and faulting forms.

   One ELF for both VMMs: QEMU -accel tcg enters the PVH note in 32-bit protected mode (paging off), pyvmm's
   --kernel enters _start in long mode; both then load this file's GDT, IDT and page tables. The vector
   handlers record the vector, error code, return RIP and CR2 of each event and resume where a test says.
   Exit (port 0xf4): 0 when every check passed (status 1), else the number of the failed check. */

#ifndef IDT_ERR_SCALE                  /* error code of a bad IDT gate: vector * 8 + 2 (IDT flag); QEMU's */
#define IDT_ERR_SCALE 8                /* TCG uses vector * 16 + 2 in 64-bit mode (seg_helper.c do_interrupt64) */
#endif
#ifndef BITSCAN                        /* 0: leave out lzcnt/tzcnt (a KVM that runs them as bsr/bsf itself) */
#define BITSCAN 1
#endif
#define XSAVE_AREA 0x300000
#define RO_BASE    0x80000000          /* maps physical 0-2 MiB read-only */
#define UNMAPPED   0x40000000          /* no PDPT entry */

    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 8, 18                     /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .quad pvh_start

    .text
    .code32
pvh_start:
    lgdt gdtr
    mov %cr4, %eax
    or $0x20, %eax                     /* PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx              /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $0x08, $_start

    .code64
    .globl _start
.macro T n
    movl $\n, %r15d
.endm
/* Run `insn` expecting exception `vec` at it (a fault: the frame's RIP is the instruction), then go on. */
.macro FAULT vec, insn:vararg
    movq $0, got_count(%rip)
    lea 9f(%rip), %rax
    mov %rax, resume(%rip)
8:  \insn
9:  movq $0, resume(%rip)
    cmpq $1, got_count(%rip)
    jne fail
    cmpq $\vec, got_vec(%rip)
    jne fail
    lea 8b(%rip), %rax
    cmp %rax, got_rip(%rip)
    jne fail
.endm
/* flags saved by SAVEF right after the instruction under test */
.macro SAVEF
    pushfq
    pop %r14
.endm
.macro FLAGS mask, want
    mov %r14, %rax
    and $\mask, %eax
    cmp $\want, %eax
    jne fail
.endm
#define ARITH 0x8d5                    /* OF SF ZF AF PF CF */
#define CF 1
#define ZF 0x40

_start:
    lgdt gdtr
    mov $pml4, %eax
    mov %rax, %cr3
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $0x7000, %esp
    pushq $0x08
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  /* IDT: vectors 0-0x41 to their stubs; 0x41 present bit clear */
    lea idt(%rip), %rdi
    lea stubs(%rip), %rsi
    xor %ecx, %ecx
2:  mov %rsi, %rax
    mov %ax, (%rdi)                    /* offset 15:0 */
    movw $0x08, 2(%rdi)
    movw $0x8e00, 4(%rdi)              /* present, DPL 0, 64-bit interrupt gate */
    shr $16, %rax
    mov %ax, 6(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    movl $0, 12(%rdi)
    add $16, %rdi
    add $16, %rsi
    inc %ecx
    cmp $0x42, %ecx
    jne 2b
    andb $0x7f, idt + 0x41 * 16 + 5(%rip)
    lidt idtr(%rip)
    mov %cr0, %rax
    or $0x10022, %rax                  /* WP NE MP */
    and $~0xc, %rax                    /* EM TS */
    mov %rax, %cr0
    mov %cr4, %rax
    or $0x40600, %rax                  /* OSXSAVE OSXMMEXCPT OSFXSR */
    mov %rax, %cr4

    /* popcnt: register, 64/32/16-bit, flags */
    T 1
    mov $0xf0f0f0f0f0f0f0f0, %rax
    stc
    popcnt %rax, %rbx
    SAVEF
    cmp $32, %rbx
    jne fail
    FLAGS ARITH, 0
    T 2
    xor %eax, %eax
    popcnt %rax, %rbx
    SAVEF
    test %rbx, %rbx
    jnz fail
    FLAGS ARITH, ZF
    T 3
    mov $-1, %rbx
    mov $0x80000001, %ecx
    popcnt %ecx, %ebx                  /* 32-bit result zero-extends */
    SAVEF
    cmp $2, %rbx
    jne fail
    T 4
    mov $-1, %rbx
    mov $0x0101, %cx
    popcnt %cx, %bx                    /* 16-bit result merges */
    SAVEF
    mov $0xffffffffffff0002, %rax
    cmp %rax, %rbx
    jne fail
    /* memory operands: RIP-relative, base+index*scale+disp, segment override */
    T 5
    popcnt word_ffff(%rip), %eax
    SAVEF
    cmp $16, %eax
    jne fail
    T 6
    lea table(%rip), %rsi
    mov $2, %rcx
    popcntq -8(%rsi,%rcx,8), %rdx      /* table[1] = 0xff00ff */
    SAVEF
    cmp $16, %rdx
    jne fail
    T 7
    lea table(%rip), %rax              /* GS base = table */
    mov %rax, %rdx
    shr $32, %rdx
    mov $0xc0000101, %ecx
    wrmsr
    popcntq %gs:16, %rax               /* table[2] = 7 */
    SAVEF
    cmp $3, %rax
    jne fail
#if BITSCAN
    /* lzcnt / tzcnt */
    T 8
    mov $0xf0, %eax
    lzcnt %eax, %ebx
    SAVEF
    cmp $24, %ebx
    jne fail
    FLAGS (CF|ZF), 0
    T 9
    xor %eax, %eax
    lzcnt %rax, %rbx
    SAVEF
    cmp $64, %rbx
    jne fail
    FLAGS (CF|ZF), CF
    T 10
    mov $0x8000, %ax
    lzcnt %ax, %bx
    SAVEF
    cmp $0, %bx
    jne fail
    FLAGS (CF|ZF), ZF
    T 11
    tzcntl table+8(%rip), %ebx         /* 0xff00ff */
    SAVEF
    cmp $0, %ebx
    jne fail
    FLAGS (CF|ZF), ZF
    T 12
    mov $0x100, %eax
    tzcnt %eax, %ebx
    SAVEF
    cmp $8, %ebx
    jne fail
    FLAGS (CF|ZF), 0
    T 13
    xor %eax, %eax
    tzcnt %ax, %bx
    SAVEF
    cmp $16, %bx
    jne fail
    FLAGS (CF|ZF), CF
#endif
    /* faulting forms: unmapped (#PF, CR2), non-canonical (#GP), lock (#UD) */
    T 14
    mov $UNMAPPED + 0x123, %rsi
    FAULT 14, popcnt (%rsi), %rax
    cmpq $0, got_err(%rip)
    jne fail
    cmp %rsi, got_cr2(%rip)
    jne fail
    T 15
    mov $0x8000000000000000, %rsi
    FAULT 13, popcnt (%rsi), %rax
    cmpq $0, got_err(%rip)
    jne fail
    T 16
    FAULT 6, .byte 0xf0, 0xf3, 0x0f, 0xb8, 0xc0     /* lock popcnt %eax,%eax */

    /* int3 and int n: traps, the frame's RIP is the next instruction; the handler runs with CS 0x08 */
    T 17
    movq $0, got_count(%rip)
    int3
10: cmpq $3, got_vec(%rip)
    jne fail
    lea 10b(%rip), %rax
    cmp %rax, got_rip(%rip)
    jne fail
    cmpq $8, got_cs(%rip)
    jne fail
    T 18
    movq $0, got_count(%rip)
    mov $0x1234, %rbx
    int $0x40
11: cmpq $0x40, got_vec(%rip)
    jne fail
    lea 11b(%rip), %rax
    cmp %rax, got_rip(%rip)
    jne fail
    cmp $0x1234, %rbx
    jne fail
    cmpq $1, got_count(%rip)
    jne fail
    T 19
    FAULT 11, int $0x41                /* gate not present: #NP(0x41*8+2) */
    cmpq $0x41 * IDT_ERR_SCALE + 2, got_err(%rip)
    jne fail

    /* x87 control */
    T 20
    fninit
    fnstcw scratch(%rip)
    cmpw $0x37f, scratch(%rip)
    jne fail
    fnstsw %ax
    test %ax, %ax
    jnz fail
    T 21
    movw $0x27f, scratch(%rip)
    fldcw scratch(%rip)
    fnstcw scratch+2(%rip)
    cmpw $0x27f, scratch+2(%rip)
    jne fail
    fwait
    T 22                               /* #NM: CR0.TS with fninit, TS+MP with fwait */
    mov %cr0, %rax
    or $8, %rax
    mov %rax, %cr0
    FAULT 7, fninit
    FAULT 7, fwait
    clts

    /* xgetbv / xsetbv */
    T 23
    mov $3, %eax
    xor %edx, %edx
    xor %ecx, %ecx
    xsetbv
    xor %ecx, %ecx
    xgetbv
    cmp $3, %eax
    jne fail
    test %edx, %edx
    jne fail
    T 24
    mov $2, %eax                       /* x87 bit clear */
    xor %edx, %edx
    xor %ecx, %ecx
    FAULT 13, xsetbv
    T 25
    mov $5, %ecx
    FAULT 13, xgetbv

    /* xsave / xrstor: an unmasked pending exception made with xrstor, then fwait/fldcw #MF, fnclex clears it */
    T 26
    mov $XSAVE_AREA, %rdi
    xor %eax, %eax
    mov $4096, %ecx
    rep stosb
    mov $3, %eax
    xor %edx, %edx
    mov $XSAVE_AREA, %rsi
    xsave (%rsi)
    cmpw $0x27f, (%rsi)                /* FCW from fldcw above */
    jne fail
    cmpl $0x1f80, 24(%rsi)             /* MXCSR */
    jne fail
    T 27
    movw $0x37e, (%rsi)                /* FCW: #I unmasked */
    movw $0x8081, 2(%rsi)              /* FSW: B ES IE */
    orq $1, 512(%rsi)                  /* XSTATE_BV: x87 */
    mov $3, %eax
    xor %edx, %edx
    xrstor (%rsi)
    fnstcw scratch(%rip)
    cmpw $0x37e, scratch(%rip)
    jne fail
    fnstsw %ax
    cmp $0x8081, %ax
    jne fail
    T 28
    FAULT 16, fwait
    T 29
    fnclex
    fnstsw %ax
    test %ax, %ax
    jnz fail
    fwait
    T 30
    mov $XSAVE_AREA + 8, %rsi
    FAULT 13, xsave (%rsi)             /* not 64-byte aligned */
    T 31
    mov $XSAVE_AREA, %rsi
    movq $1, 520(%rsi)                 /* XCOMP_BV nonzero without bit 63 */
    mov $3, %eax
    FAULT 13, xrstor (%rsi)
    movq $0, 520(%rsi)

    /* cmpxchg8b / cmpxchg16b */
    T 32
    lea pair(%rip), %rsi
    mov $0x11111111, %eax
    mov $0x22222222, %edx
    mov $0x33333333, %ebx
    mov $0x44444444, %ecx
    cmpxchg8b (%rsi)                   /* pair = 0x2222222211111111: equal */
    jnz fail
    mov $0x4444444433333333, %rax
    cmp %rax, (%rsi)
    jne fail
    T 33
    xor %eax, %eax
    xor %edx, %edx
    lock cmpxchg8b (%rsi)              /* not equal: EDX:EAX = memory */
    jz fail
    cmp $0x33333333, %eax
    jne fail
    cmp $0x44444444, %edx
    jne fail
    T 34
    lea pair16(%rip), %rsi
    mov $1, %rax
    mov $2, %rdx
    mov $3, %rbx
    mov $4, %rcx
    lock cmpxchg16b (%rsi)             /* equal */
    jnz fail
    cmpq $3, (%rsi)
    jne fail
    cmpq $4, 8(%rsi)
    jne fail
    T 35
    lock cmpxchg16b (%rsi)             /* RDX:RAX = 2:1 now differs */
    jz fail
    cmp $3, %rax
    jne fail
    cmp $4, %rdx
    jne fail
    T 36
    lea pair16+8(%rip), %rsi
    FAULT 13, cmpxchg16b (%rsi)        /* not 16-byte aligned */
    T 37
    FAULT 6, .byte 0x0f, 0xc7, 0xc8    /* cmpxchg8b %eax: register form */
    T 38
    lea pair(%rip), %rsi
    mov $RO_BASE, %eax
    add %rax, %rsi
    mov (%rsi), %rax                   /* readable through the read-only mapping */
    mov %rax, %rdx
    shr $32, %rdx
    FAULT 14, cmpxchg8b (%rsi)         /* written even when equal: #PF, present|write */
    cmpq $3, got_err(%rip)
    jne fail
    cmp %rsi, got_cr2(%rip)
    jne fail

    /* compatibility mode (32-bit code under long mode): the decoder's 32-bit forms, int3 back to 32-bit code */
    T 39
    pushq $0x18
    lea 20f(%rip), %rax
    push %rax
    lretq
    .code32
20: mov $0xf0f0, %eax
    lea table + 8, %esi
    popcnt %eax, %ebx
    cmp $8, %ebx
    jne 29f
    popcntw 0(%esi), %bx                 /* 16-bit operand, 32-bit addressing: 0x00ff */
    cmp $8, %bx
    jne 29f
    movl $0, got_count
    int3
21: cmpl $3, got_vec
    jne 29f
    cmpl $21b, got_rip
    jne 29f
    cmpl $0x18, got_cs
    jne 29f
    ljmp $0x08, $22f
29: ljmp $0x08, $fail
    .code64
22: xor %eax, %eax
    out %al, $0xf4
fail:
    mov %r15d, %eax
    out %al, $0xf4
    hlt
    jmp fail

/* vector stubs, 16 bytes each: [error code placeholder,] vector number, to common */
    .balign 16
stubs:
    .set v, 0
    .rept 0x42
    .balign 16
    .if v == 8 || (v >= 10 && v <= 14) || v == 17
    .else
    pushq $0
    .endif
    pushq $v
    jmp common
    .set v, v + 1
    .endr
common:                                /* vector, error, rip, cs, rflags, rsp, ss */
    push %rax
    mov 8(%rsp), %rax
    mov %rax, got_vec(%rip)
    mov 16(%rsp), %rax
    mov %rax, got_err(%rip)
    mov 24(%rsp), %rax
    mov %rax, got_rip(%rip)
    mov 32(%rsp), %rax
    mov %rax, got_cs(%rip)
    mov %cr2, %rax
    mov %rax, got_cr2(%rip)
    incq got_count(%rip)
    mov resume(%rip), %rax
    test %rax, %rax
    jz 1f
    mov %rax, 24(%rsp)
1:  pop %rax
    add $16, %rsp
    iretq

    .balign 16
got_vec: .quad 0
got_err: .quad 0
got_rip: .quad 0
got_cs: .quad 0
got_cr2: .quad 0
got_count: .quad 0
resume: .quad 0
scratch: .quad 0
word_ffff: .long 0xffff
    .balign 16
table: .quad 0, 0xff00ff, 7
pair: .quad 0x2222222211111111
    .balign 16
pair16: .quad 1, 2
    .balign 8
gdt: .quad 0, 0x00af9a000000ffff, 0x00cf92000000ffff, 0x00cf9a000000ffff   /* 0x18: 32-bit code */
gdtr: .word gdtr - gdt - 1
    .quad gdt
idtr: .word 0x42 * 16 - 1
    .quad idt
    .balign 16
idt: .fill 0x42 * 16, 1, 0
    .balign 4096
pml4: .quad pdpt + 3
    .fill 511, 8, 0
pdpt: .quad pd + 3, 0, pd_ro + 3
    .fill 509, 8, 0
pd:
    .set i, 0
    .rept 512
    .quad (i << 21) | 0x83
    .set i, i + 1
    .endr
pd_ro: .quad 0x81                      /* 0x80000000: physical 0, present, 2 MiB, read-only */
    .fill 511, 8, 0
