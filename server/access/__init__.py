"""Inbound access control and audit: who is asking (tokens), what they may do (scopes,
roles, purpose of use, relationship), and the record of every access (AuditEvent)."""
