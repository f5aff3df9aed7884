/* The guest both VMMs of the benchmarks boot from the same ELF file (tests/bench/bench_vs_qemu.py).

   QEMU's -kernel enters it at its PVH note (XEN_ELFNOTE_PHYS32_ENTRY) in 32-bit protected mode, paging off;
   pvh_start switches to long mode with the page tables below and jumps to start64. pyvmm's --kernel enters
   the ELF entry, start64, in long mode directly. From start64 on both run the same instructions:
     WORK 0  hello: print MSG on COM1 (first byte at once), exit
     WORK 1  COUNT `out %al, %dx` to PORT, exit
     WORK 2  COUNT `in %dx, %al` from PORT, exit
   (serial throughput is WORK 1 with PORT 0x3f8: bytes to THR, no LSR polling.)
   Exit: write 0 to port 0xf4 (isa-debug-exit), process status 1 on both. */
#ifndef WORK
#define WORK 0
#endif
#ifndef COUNT
#define COUNT 0
#endif
#ifndef PORT
#define PORT 0x3f8
#endif

    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 8, 18              /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .quad pvh_start             /* 8 bytes: QEMU reads a 64-bit value from an ELF64 note */

    .text
    .globl _start
    .code32
pvh_start:
    lgdt gdtr
    mov %cr4, %eax
    or $0x20, %eax              /* PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax        /* PG | PE */
    mov %eax, %cr0
    ljmp $0x08, $start64

    .code64
_start:
start64:
#if WORK == 0
    lea msg(%rip), %rsi
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 9f
    out %al, %dx
    jmp 1b
#elif WORK == 1
    mov $COUNT, %ecx
    mov $PORT, %dx
    mov $'.', %al
    test %ecx, %ecx
    jz 9f
1:  out %al, %dx
    dec %ecx
    jnz 1b
#elif WORK == 2
    mov $COUNT, %ecx
    mov $PORT, %dx
    test %ecx, %ecx
    jz 9f
1:  in %dx, %al
    dec %ecx
    jnz 1b
#endif
9:  xor %eax, %eax
    out %al, $0xf4
2:  hlt
    jmp 2b

msg: .asciz "Hello from the benchmark guest\n"

    .balign 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
gdtr:
    .word gdtr - gdt - 1
    .long gdt

    .balign 4096
pml4:
    .quad pdpt + 3
    .fill 511, 8, 0
pdpt:
    .quad pd + 3
    .fill 511, 8, 0
pd:                             /* the first 1 GiB, 2 MiB pages */
    .set i, 0
    .rept 512
    .quad (i << 21) | 0x83
    .set i, i + 1
    .endr
