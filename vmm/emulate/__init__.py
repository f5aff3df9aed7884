"""Finishing the instructions KVM's own emulator gives up on (KVM_EXIT_INTERNAL_ERROR, emulation suberror).

decode: bytes -> Insn; paging: guest linear -> physical with #PF; instructions live in one small file per family.
"""
