"""Turning uploaded bytes into a validated, normalized radiograph (no Django models here)."""
