"""Worked examples to copy; not part of the installed package.

Run one from the repository root: ``klspec prove --module examples.label_smoothing``.
"""
