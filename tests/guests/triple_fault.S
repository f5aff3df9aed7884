/* Loads an empty IDT and raises an exception: #UD -> #DF -> triple fault (KVM_EXIT_SHUTDOWN). */
    .code64
    .globl _start
_start:
    lidt idtr(%rip)
    ud2
1:  jmp 1b
idtr: .word 0
      .quad 0
