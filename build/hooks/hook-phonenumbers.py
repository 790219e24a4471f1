"""PyInstaller hook for phonenumbers: the parsing and validation tables only.

It replaces the contributed hook, which collects every submodule, including the geocoding, carrier
and time-zone tables (about 43 MB) that number detection never loads. phonenumbers imports its
region tables by name at run time, so ``data`` and ``shortdata`` are collected in full.
"""

# ruff: noqa: INP001
# (a PyInstaller hook is loaded by path from build/hooks, not imported as a package.)

from PyInstaller.utils.hooks import collect_submodules  # type: ignore[import-untyped]

_UNUSED = ("phonenumbers.geo", "phonenumbers.carrier", "phonenumbers.timezone", "phonenumbers.tzdata")

hiddenimports = collect_submodules("phonenumbers", filter=lambda name: not name.startswith(_UNUSED))
