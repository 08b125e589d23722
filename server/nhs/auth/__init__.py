"""NHS API platform authentication: signed-JWT client assertions, cached access tokens,
and the AuthHeaders implementations each NHS client is wired with.

Reference: shared/reference/nhs-apis.md section 3. Tokens, assertions and keys are
never logged.
"""
