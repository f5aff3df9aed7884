/* Performs the port accesses listed at SEQ (2 bytes each: op, value; op 0 ends the list), then exits 0x10 through
   port 0xf4. op = kind << 4 | port index (0x40, 0x41, 0x42, 0x43, 0x61); kinds: 1 OUT AL,DX; 2 IN AL,DX;
   3 OUTSB (KVM's emulator); 4 INSB; 5 OUT AX,DX; 6 IN AX,DX. The test writes the list into guest RAM. */
#ifndef SEQ
#define SEQ 0x200000
#endif
    .code64
    .globl _start
_start:
    cld
    mov $SEQ, %rbx
next:
    movzbl (%rbx), %ecx         /* op */
    test %ecx, %ecx
    jz end
    mov %ecx, %eax
    and $7, %eax
    lea ports(%rip), %rdx
    movzwl (%rdx,%rax,2), %edx  /* the port */
    shr $4, %ecx
    movzbl 1(%rbx), %eax        /* the value */
    lea 1(%rbx), %rsi           /* OUTSB's source: the value byte */
    lea scratch(%rip), %rdi
    add $2, %rbx
    cmp $1, %ecx
    je 1f
    cmp $2, %ecx
    je 2f
    cmp $3, %ecx
    je 3f
    cmp $4, %ecx
    je 4f
    cmp $5, %ecx
    je 5f
    in %dx, %ax
    jmp next
1:  out %al, %dx
    jmp next
2:  in %dx, %al
    jmp next
3:  outsb
    jmp next
4:  insb
    jmp next
5:  out %ax, %dx
    jmp next
end:
    mov $0x10, %al
    out %al, $0xf4
    hlt
    jmp end
ports: .word 0x40, 0x41, 0x42, 0x43, 0x61
scratch: .quad 0
