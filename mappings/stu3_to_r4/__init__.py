"""STU3 -> R4 conversions (GP Connect Access Record Structured answers in STU3).

Mappings are data (`*.yaml` beside this file: source path -> target path, named
transform, value maps); `rules.py` loads and checks them, `engine.py` applies them,
`transforms.py` is the short list of named transforms, and `gpconnect_allergies.py`
knows how a GP Connect structured record carries allergies in Lists.
"""
