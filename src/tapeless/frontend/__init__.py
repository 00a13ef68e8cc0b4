"""The front end: Python functions to IR graphs."""

from .parser import parse

__all__ = ["parse"]
