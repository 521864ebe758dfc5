"""Disentanglement methods: one module per method, registered in ``registry``."""
