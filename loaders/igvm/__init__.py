"""IGVM: a strict reader, a deterministic writer, and the model between them (no KVM here)."""

from .builder import IgvmBuilder
from .constants import (Architecture, HeaderType, MemoryMapEntryType, PageDataFlags, PageDataType, Platform,
                        RelocationFlags)
from .model import (CcaPolicy, CorimDocument, CorimSignature, ErrorRange, GuestPolicy, IgvmFile, PageData,
                    PageTableRelocation, ParameterArea, ParameterInsert, ParameterUsage, RelocatableRegion,
                    RequiredMemory, SnpIdBlock, SupportedPlatform, VbsMeasurement, VpContext)
from .reader import read_igvm
from .writer import write_igvm

__all__ = [n for n in dir() if not n.startswith("_")]
