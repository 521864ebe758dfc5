"""Analyses that are not training or metrics: DEFT's annealing test (information freezing points)."""
