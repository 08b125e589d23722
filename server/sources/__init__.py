"""NHS sources: one package per NHS API (see server/sources/base.py and registry.py)."""
