/* Reads an unclaimed port (must read all-ones), writes to it, and reports the byte through port 0xf4. */
    .code64
    .globl _start
_start:
    mov $0x1234, %dx
    mov $0x55, %al
    out %al, %dx
    in %dx, %al
    shr $1, %al                 /* 0xff -> 0x7f, status (0x7f << 1) | 1 = 255 */
    out %al, $0xf4
    hlt
