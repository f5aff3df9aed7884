"""Linux direct boot: bzImage and vmlinux parsing, the zero page, and the IGVM that boots them."""
