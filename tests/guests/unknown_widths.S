/* Unclaimed ports at every width: a dword write, then a read of each width, which must give all-ones over the
   dword just written (0x55555555 in the I/O data), then debug-exit with the number of reads that did not. */
    .code64
    .globl _start
_start:
    xor %ebx, %ebx
    mov $0x55555555, %esi
    mov $0x1240, %dx
    mov %esi, %eax
    out %eax, %dx               /* dword write to 0x1240 */
    mov $0x1238, %dx
    in %dx, %eax                /* dword read of 0x1238 */
    cmp $0xffffffff, %eax
    je 1f
    inc %ebx
1:  mov $0x1242, %dx
    mov %si, %ax
    out %ax, %dx                /* word write to 0x1242 (the data's low word 0x5555 again) */
    mov $0x1236, %dx
    in %dx, %ax                 /* word read of 0x1236 */
    cmp $0xffff, %ax
    je 2f
    inc %ebx
2:  mov $0x1240, %dx
    mov %esi, %eax
    out %eax, %dx
    mov $0x1234, %dx
    in %dx, %al                 /* byte read of 0x1234 */
    cmp $0xff, %al
    je 3f
    inc %ebx
3:  mov %bl, %al
    out %al, $0xf4
    hlt
