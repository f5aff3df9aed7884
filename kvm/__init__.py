"""ctypes binding to /dev/kvm: system, VM and vCPU objects. Imports nothing from the other layers."""
