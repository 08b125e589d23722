"""A toy NHS source, written as a new source is: one package (settings, emulator, client and
provider, declaration) and one line where the façade's sources are listed. The test that
serves it (tests/integration/test_toy_source.py) edits no shared module."""
