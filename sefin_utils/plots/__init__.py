"""Figures, one module per stage: ``plots.data``, ``plots.fins``, ``plots.ser``. Every figure function returns a
matplotlib Figure and saves it as PNG when given a path."""
