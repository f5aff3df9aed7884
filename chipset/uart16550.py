"""A 16550A UART (COM1 by default): the register model Linux's 8250 driver and firmware consoles depend on.

Transmission is instantaneous (THR is always empty again right after a write), so LSR reads 0x60 when
idle and a THRE interrupt follows every write while IER.THRI is enabled. Host input goes through a
backlog that refills the 16-byte receive FIFO as the guest reads it, the way a terminal with flow
control would, so pasted text is not lost to overruns.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

# Register offsets
RBR_THR_DLL, IER_DLM, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)

IER_RDI, IER_THRI, IER_RLSI, IER_MSI = 0x01, 0x02, 0x04, 0x08
IIR_NO_INT, IIR_MSI, IIR_THRI, IIR_RDI, IIR_RLSI, IIR_FIFO = 0x01, 0x00, 0x02, 0x04, 0x06, 0xC0
FCR_ENABLE, FCR_CLEAR_RX, FCR_CLEAR_TX = 0x01, 0x02, 0x04
LCR_DLAB = 0x80
MCR_DTR, MCR_RTS, MCR_OUT1, MCR_OUT2, MCR_LOOP = 0x01, 0x02, 0x04, 0x08, 0x10
LSR_DR, LSR_OE, LSR_PE, LSR_FE, LSR_BI, LSR_THRE, LSR_TEMT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI
MSR_DCTS, MSR_DDSR, MSR_TERI, MSR_DDCD, MSR_CTS, MSR_DSR, MSR_RI, MSR_DCD = (1 << i for i in range(8))
MSR_IDLE = MSR_DCD | MSR_DSR | MSR_CTS

FIFO_SIZE = 16            # a 16550A's receive FIFO
BACKLOG_LIMIT = 1 << 20   # host bytes waiting for FIFO room; beyond this input is dropped


class Uart16550:
    """COM port registers at offsets 0-7; irq(line, level) is driven only when the level changes."""

    def __init__(self, irq: Callable[[int, int], None] | None = None, line: int | None = None,
                 output: Callable[[bytes], None] | None = None) -> None:
        """irq(line, level) drives the interrupt line the machine wired this port to (COM1's is the machine's)."""
        if irq is not None and line is None:
            raise ValueError("a UART with an irq callable needs its interrupt line")
        self.irq = irq
        self.line = line
        self.output = output or (lambda data: None)
        self._lock = threading.Lock()
        self.dll, self.dlm = 0x0C, 0x00      # 9600 baud
        self.ier = 0
        self.lcr = 0x03                      # 8N1
        self.mcr = MCR_OUT2
        self.lsr = LSR_THRE | LSR_TEMT
        self.msr = MSR_IDLE
        self.scr = 0
        self.fifo_enabled = False
        self.rx: deque[int] = deque()
        self.backlog = bytearray()
        self.dropped = 0                     # host bytes lost because the backlog was full
        self.thri_pending = False
        self._level = 0

    # --- interrupt logic ---------------------------------------------------------------
    def _pending(self) -> int:
        """The IIR interrupt id by 16550 priority, or IIR_NO_INT."""
        if self.ier & IER_RLSI and self.lsr & LSR_ERRORS:
            return IIR_RLSI
        if self.ier & IER_RDI and self.rx:
            return IIR_RDI
        if self.ier & IER_THRI and self.thri_pending:
            return IIR_THRI
        if self.ier & IER_MSI and self.msr & 0x0F:
            return IIR_MSI
        return IIR_NO_INT

    def _update_irq(self) -> None:
        level = 1 if (self._pending() != IIR_NO_INT and self.mcr & MCR_OUT2) else 0
        if level != self._level:
            self._level = level
            if self.irq is not None:
                self.irq(self.line, level)

    # --- receive path --------------------------------------------------------------------
    def _capacity(self) -> int:
        return FIFO_SIZE if self.fifo_enabled else 1

    def _refill(self) -> None:
        room = self._capacity() - len(self.rx)
        if room > 0 and self.backlog:
            take = self.backlog[:room]
            del self.backlog[:room]
            self.rx.extend(take)
        if self.rx:
            self.lsr |= LSR_DR

    def _loop_byte(self, b: int) -> None:
        """A byte sent in loopback mode arrives at our own receiver; a full FIFO overruns."""
        if len(self.rx) >= self._capacity():
            self.lsr |= LSR_OE
        else:
            self.rx.append(b)
            self.lsr |= LSR_DR

    def receive(self, data: bytes) -> int:
        """Host input (any thread); returns how many bytes were accepted (the rest is dropped)."""
        with self._lock:
            room = BACKLOG_LIMIT - len(self.backlog)
            accepted = data[:max(room, 0)]
            self.dropped += len(data) - len(accepted)
            self.backlog += accepted
            self._refill()
            self._update_irq()
        return len(accepted)

    # --- transmit path -------------------------------------------------------------------
    def transmit(self, data: bytes) -> None:
        """Exactly len(data) THR writes in a row (bytes KVM coalesced), output in one call when possible."""
        if not data:
            return
        with self._lock:
            if self.lcr & LCR_DLAB:
                self.dll = data[-1]
                return
            if self.mcr & MCR_LOOP:
                for b in data:
                    self._loop_byte(b)
                self.thri_pending = True
                self._update_irq()
                return
            self.thri_pending = True
            self._update_irq()
        self.output(bytes(data))

    # --- registers -----------------------------------------------------------------------
    def io_read(self, offset: int, size: int) -> int:
        with self._lock:
            value = self._read(offset)
            self._update_irq()
        return value

    def _read(self, offset: int) -> int:
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR_DLL:
            if dlab:
                return self.dll
            if not self.rx:
                return 0
            b = self.rx.popleft()
            if not self.rx:
                self.lsr &= ~LSR_DR
            self._refill()
            return b
        if offset == IER_DLM:
            return self.dlm if dlab else self.ier
        if offset == IIR_FCR:
            iid = self._pending()
            if iid == IIR_THRI:
                self.thri_pending = False     # reading IIR acknowledges a THRE interrupt
            return iid | (IIR_FIFO if self.fifo_enabled else 0)
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            value = self.lsr
            self.lsr &= ~LSR_ERRORS           # reading LSR clears the error bits
            return value
        if offset == MSR:
            value = self.msr
            self.msr &= 0xF0                  # reading MSR clears the delta bits
            return value
        if offset == SCR:
            return self.scr
        return 0xFF

    def io_write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        out = None
        with self._lock:
            dlab = self.lcr & LCR_DLAB
            if offset == RBR_THR_DLL:
                if dlab:
                    self.dll = value
                elif self.mcr & MCR_LOOP:
                    self._loop_byte(value)
                    self.thri_pending = True
                else:
                    out = bytes((value,))
                    self.thri_pending = True
            elif offset == IER_DLM:
                if dlab:
                    self.dlm = value
                else:
                    if value & IER_THRI and not self.ier & IER_THRI:
                        self.thri_pending = True   # THR is empty: enabling THRI raises it at once (as QEMU)
                    self.ier = value & 0x0F
            elif offset == IIR_FCR:
                if value & FCR_CLEAR_RX:
                    self.rx.clear()
                    self.lsr &= ~LSR_DR
                self.fifo_enabled = bool(value & FCR_ENABLE)
                while len(self.rx) > self._capacity():
                    self.rx.pop()
                self._refill()
            elif offset == LCR:
                self.lcr = value
            elif offset == MCR:
                self._set_mcr(value & 0x1F)
            elif offset == SCR:
                self.scr = value
            self._update_irq()
        if out is not None:
            self.output(out)

    def _set_mcr(self, value: int) -> None:
        self.mcr = value
        if value & MCR_LOOP:   # modem inputs mirror the outputs: CTS<-RTS, DSR<-DTR, RI<-OUT1, DCD<-OUT2
            new = ((MSR_CTS if value & MCR_RTS else 0) | (MSR_DSR if value & MCR_DTR else 0)
                   | (MSR_RI if value & MCR_OUT1 else 0) | (MSR_DCD if value & MCR_OUT2 else 0))
        else:
            new = MSR_IDLE
        old = self.msr & 0xF0
        delta = self.msr & 0x0F
        changed = old ^ new
        if changed & MSR_CTS:
            delta |= MSR_DCTS
        if changed & MSR_DSR:
            delta |= MSR_DDSR
        if changed & MSR_DCD:
            delta |= MSR_DDCD
        if old & MSR_RI and not new & MSR_RI:
            delta |= MSR_TERI                 # trailing edge of ring indicator
        self.msr = new | delta
