/* A 32-bit "startup_32" for igvm-tooling's x86 boot mode (entered in flat protected mode, paging off, ESI =
   boot_params): checks the setup header is there, prints the command line the file carries as
   "cmdline=[...]" on COM1, and exits through the debug-exit port with 0x21 (0x30 if the header is missing). */
    .code32
    .globl _start
_start:
    mov $0x30, %al
    cmpl $0x53726448, 0x202(%esi)      /* "HdrS" */
    jne done
    mov $msg, %ebx
    call puts
    mov 0x228(%esi), %ebx              /* cmd_line_ptr */
    call puts
    mov $end, %ebx
    call puts
    mov $0x21, %al
done:
    out %al, $0xf4
    hlt
    jmp done
puts:                                  /* ebx: NUL-terminated string */
    mov $0x3f8, %dx
1:  mov (%ebx), %al
    test %al, %al
    jz 2f
    out %al, %dx
    inc %ebx
    jmp 1b
2:  ret
msg: .asciz "cmdline=["
end: .asciz "]\n"
