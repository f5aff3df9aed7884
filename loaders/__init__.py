"""Pure functions from file bytes to load plans. Never touches KVM, devices or the VMM."""
