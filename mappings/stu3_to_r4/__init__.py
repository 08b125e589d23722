"""STU3 -> R4 conversions (GP Connect Access Record Structured answers in STU3).

Mappings are data (YAML kept with the source whose shape it converts, e.g.
server/sources/gpconnect/allergy_intolerance.yaml: source path -> target path, named
transform, value maps); `rules.py` loads and checks them (file reading and mistake
reporting shared with the PAS profiles, mappings/loading.py), `engine.py` applies them
(paths walked by mappings/paths.py) and `transforms.py` is the short list of named
transforms. How a GP Connect structured record
carries allergies in Lists is GP Connect's own (server/sources/gpconnect/mapping.py).
"""
