"""Flags that several commands' parsers and ``checks``' messages share, importable without the
frameworks (``checks`` imports Ray, PyTorch and MLflow; building the parser must not)."""

ALLOW_OUTSIDE_ROOT = "--allow-outside-root"
"""``resume`` and ``report``: a copied or moved study may write MLflow artifacts outside its runs root."""
