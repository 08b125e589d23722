"""GP Connect Access Record: Structured (STU3, via SSP or the Clinical Data Gateway): AllergyIntolerance."""
