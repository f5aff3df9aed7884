/* A Xen PVH ELF note linked after the Linux probe kernel (tests/linux_images.py probe_vmlinux(pvh=True)): the
   32-bit physical entry that a PVH loader such as QEMU's -kernel uses, declared as Linux declares it in
   arch/x86/platform/pvh/head.S: ELFNOTE(Xen, XEN_ELFNOTE_PHYS32_ENTRY, _ASM_PTR ...), type 18, a 64-bit value. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 8, 18          /* namesz ("Xen\0"), descsz, XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .quad pvh_start

    .text
    .code32
    .globl pvh_start
pvh_start:                  /* never entered here: pyvmm boots the 64-bit ELF entry */
1:  hlt
    jmp 1b
