"""UEFI payloads as OpenVMM launches them: the config blob at 0x709000, the IGVM parameter block, SEC discovery."""
