"""Optimization passes on the IR."""
