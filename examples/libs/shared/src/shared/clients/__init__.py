"""Typed HTTP clients for the data services: the only way business code reaches data."""
