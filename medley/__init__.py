"""Medley: multimodal content understanding and recommendations."""

__version__ = "0.1.0"
