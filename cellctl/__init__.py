"""cellctl: composition root, runtime, CLI."""

__version__ = "0.1.0"
