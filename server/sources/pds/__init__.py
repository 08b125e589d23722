"""Personal Demographics Service (PDS FHIR R4): Patient."""
