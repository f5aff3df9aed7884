"""The process exit statuses pyvmm returns, defined once (QEMU's conventions where QEMU has one).

A guest's debug-exit write of V ends the run with (V << 1) | 1, as QEMU's isa-debug-exit does; the device
computes that value itself. The rest are fixed numbers the CLI, the machine and the tests share.
"""

OK = 0                 # power-off, or a reset with --no-reboot, or `pyvmm igvm ...` done
BAD_INPUT = 2          # a bad command line or input file: one line on stderr
FATAL = 3              # a guest or KVM error the VMM cannot continue from (register dump on stderr)
TIMEOUT = 124          # --timeout ran out (as coreutils' timeout)
INTERRUPTED = 130      # ctrl-c (128 + SIGINT)
