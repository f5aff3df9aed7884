"""Devices the guest sees. Each gets what it needs (memory object, irq callable) handed in; none knows KVM."""
