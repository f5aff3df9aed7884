"""ctypes binding to /dev/kvm: system, VM and vCPU objects. Imports nothing from the other layers."""

from .errors import KvmError, KvmUnavailable
from .system import Kvm, kvm_usable
from .vm import Vm
from .vcpu import Vcpu, install_kick_handler

__all__ = ["Kvm", "Vm", "Vcpu", "KvmError", "KvmUnavailable", "kvm_usable", "install_kick_handler"]
