"""segfetch: segmented, resumable, verified downloads of Python wheels."""

__version__ = "0.1.0"
