"""The 16550A as Linux's 8250 driver probes and drives it (drivers/tty/serial/8250/8250_port.c)."""

import threading

from chipset.uart16550 import Uart16550

THR, IER, IIR, FCR, LCR, MCR, LSR, MSR, SCR = 0, 1, 2, 2, 3, 4, 5, 6, 7


class Rig:
    def __init__(self):
        self.out = bytearray()
        self.levels = []
        self.u = Uart16550(irq=lambda line, level: self.levels.append((line, level)), line=4,
                           output=self.out.extend)

    def r(self, off):
        return self.u.io_read(off, 1)

    def w(self, off, v):
        self.u.io_write(off, 1, v)


def test_idle_registers_and_ier_existence_test():
    t = Rig()
    assert t.r(LSR) == 0x60 and t.r(MSR) & 0xF0 == 0xB0 and t.r(IIR) == 0x01
    t.w(IER, 0)
    assert t.r(IER) == 0
    t.w(IER, 0x0F)
    assert t.r(IER) & 0x0F == 0x0F
    t.w(IER, 0xFF)
    assert t.r(IER) == 0x0F


def test_fifo_detection_reads_as_16550a():
    t = Rig()
    t.w(FCR, 0xE7)
    assert t.r(IIR) & 0xC0 == 0xC0
    t.w(FCR, 0)
    assert t.r(IIR) & 0xC0 == 0


def test_loopback_test_and_loopback_data():
    t = Rig()
    t.w(MCR, 0x10 | 0x0A)                      # LOOP | RTS | OUT2
    assert t.r(MSR) & 0xF0 == 0x90             # CTS | DCD, as the driver's check wants
    t.w(THR, 0x5A)
    assert not t.out                           # nothing leaves the chip in loopback
    assert t.r(LSR) & 0x01 and t.r(THR) == 0x5A
    t.w(MCR, 0x08)
    assert t.r(MSR) & 0xF0 == 0xB0


def test_divisor_latch():
    t = Rig()
    t.w(LCR, 0x83)
    t.w(0, 0x01)
    t.w(1, 0x00)
    assert (t.r(0), t.r(1)) == (0x01, 0x00)
    t.w(LCR, 0x03)
    t.w(THR, ord("A"))
    assert t.out == b"A" and t.r(IER) == 0     # DLL writes did not transmit or touch IER


def test_thre_interrupt_on_enable_and_after_write():
    t = Rig()
    t.w(MCR, 0x08)                             # OUT2 gates the IRQ line on a PC
    t.w(IER, 0x02)
    assert t.levels[-1] == (4, 1)
    assert t.r(IIR) == 0x02                    # THRE pending; reading IIR acknowledges it
    assert t.r(IIR) == 0x01 and t.levels[-1] == (4, 0)
    t.w(THR, ord("x"))
    assert t.levels[-1] == (4, 1) and t.r(IIR) == 0x02


def test_irq_gated_by_out2():
    t = Rig()
    t.w(MCR, 0x00)
    t.w(IER, 0x02)
    assert not t.levels or t.levels[-1][1] == 0
    t.w(MCR, 0x08)
    assert t.levels[-1] == (4, 1)


def test_receive_interrupt_priority_and_fifo_refill():
    t = Rig()
    t.w(FCR, 0x01)
    t.w(IER, 0x03)                             # RX data and THRE
    assert t.u.receive(b"0123456789abcdefXYZ") == 19
    assert t.r(IIR) & 0x0F == 0x04             # RX data outranks THRE
    got = bytearray()
    while t.r(LSR) & 0x01:
        got.append(t.r(THR))
    assert got == b"0123456789abcdefXYZ"       # the backlog refilled the 16-byte FIFO, nothing lost
    assert t.r(IIR) & 0x0F == 0x02


def test_transmit_equals_thr_writes():
    a, b = Rig(), Rig()
    for r in (a, b):
        r.w(IER, 0x02)
        r.r(IIR)
    a.u.transmit(b"hello")
    for ch in b"hello":
        b.w(THR, ch)
    assert a.out == b.out == b"hello"
    assert a.r(IIR) == b.r(IIR) == 0x02
    a.w(LCR, 0x80)
    a.u.transmit(b"\x07\x03")
    assert a.r(0) == 0x03 and a.out == b"hello"   # with DLAB set the bytes went to the divisor latch


def test_receive_from_another_thread():
    t = Rig()
    th = threading.Thread(target=t.u.receive, args=(b"abc",))
    th.start()
    th.join()
    assert bytes(t.r(THR) for _ in range(3)) == b"abc"
    assert not t.r(LSR) & 0x01


def test_loopback_overrun_sets_oe_and_line_status_interrupt():
    t = Rig()
    t.w(MCR, 0x18)
    t.w(IER, 0x04)
    t.w(THR, 1)
    t.w(THR, 2)                                # FIFO off: capacity 1 -> overrun
    assert t.r(IIR) & 0x0F == 0x06
    assert t.r(LSR) & 0x02
    assert not t.r(LSR) & 0x02                 # reading LSR cleared it


def test_scratch_register():
    t = Rig()
    t.w(SCR, 0xA5)
    assert t.r(SCR) == 0xA5
