"""Conversions from NHS API shapes to the R4 resources the façade serves."""
