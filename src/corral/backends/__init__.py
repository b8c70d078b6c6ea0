"""Backends: one package per storage technology, each implementing corral's ports."""
