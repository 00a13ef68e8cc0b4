"""Automatic differentiation on the IR."""
