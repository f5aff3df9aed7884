"""Assembles a machine from kvm/, loaders/ and chipset/ and runs it."""

__version__ = "0.1.0"
