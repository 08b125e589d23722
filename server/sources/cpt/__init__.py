"""Clinical Prescription Tracker (CPT): MedicationRequest."""
