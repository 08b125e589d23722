"""STU3 -> R4 conversions (GP Connect Access Record Structured answers in STU3).

Mappings are data (YAML kept with the source whose shape it converts, e.g.
server/sources/gpconnect/allergy_intolerance.yaml: source path -> target path, named
transform, value maps); `rules.py` loads and checks them, `engine.py` applies them and
`transforms.py` is the short list of named transforms. How a GP Connect structured record
carries allergies in Lists is GP Connect's own (server/sources/gpconnect/mapping.py).
"""
