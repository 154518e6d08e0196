"""The local stack: `buzzwatch demo`, `buzzwatch emulator`, the throwaway servers of tests and benchmarks.

The top layer (docs/architecture.md): it may import every component; nothing but tests and benchmarks
imports it, and no image copies it.
"""
