"""Build the access side from settings: trusted issuers, the role table, the policy.

The development issuer is trusted only where it cannot reach real patients' data
(server.access.environments): automatically when every NHS API is the emulator,
on request (FACADE_DEV_ISSUER=on) against NHS England's sandbox or integration
environments, and never when any configured NHS URL is production — then start-up
stops with an error rather than quietly trusting a key anyone on the machine can use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp

from server.access.audit_trail import AuditTrail
from server.access.control import AccessControl
from server.access.dev_issuer import DEV_ISSUER, load_or_create_key, public_key_set
from server.access.environments import environment
from server.access.policy import AccessPolicy, PatientDirectory
from server.access.quota import CallerQuota
from server.access.roles import load_role_table
from server.access.tokens import JWKSFile, JWKSUrl, KeySource, StaticKeys, TokenVerifier, TrustedIssuer
from server.settings import Settings

log = logging.getLogger("facade.access")


class AccessConfigError(ValueError):
    """Settings that would make the façade insecure or unusable: start-up stops."""


def nhs_environment(settings: Settings, nhs_urls: Sequence[str | None]) -> str:
    """The most serious environment of the NHS API URLs (`nhs_urls`: as configured, None =
    the embedded emulator; server.sources.config.SourceConfig.configured_urls) and the NHS
    token endpoint."""
    return environment([*nhs_urls, settings.token_url], settings.emulator_hosts)


def dev_issuer_trusted(settings: Settings, nhs_urls: Sequence[str | None]) -> bool:
    env = nhs_environment(settings, nhs_urls)
    if settings.dev_issuer == "off":
        return False
    if settings.dev_issuer == "auto":
        return env == "emulator"
    if env == "production":
        raise AccessConfigError(
            "FACADE_DEV_ISSUER=on is refused: the configured NHS APIs include production "
            "URLs. Configure your identity provider (FACADE_AUTH_ISSUER) instead."
        )
    return True


def trusted_issuers(
    settings: Settings, nhs_urls: Sequence[str | None], session: aiohttp.ClientSession
) -> list[TrustedIssuer]:
    audiences = tuple(settings.auth_audience) or (settings.public_base_url(),)
    algorithms = tuple(a for a in settings.auth_algorithms if a != "none" and not a.startswith("HS"))
    issuers = []
    if settings.auth_issuer:
        keys: KeySource
        if settings.auth_jwks_url:
            keys = JWKSUrl(session, settings.auth_jwks_url)
        elif settings.auth_jwks_file:
            keys = JWKSFile(settings.auth_jwks_file)
        else:
            raise AccessConfigError("FACADE_AUTH_ISSUER needs FACADE_AUTH_JWKS_URL or FACADE_AUTH_JWKS_FILE")
        issuers.append(TrustedIssuer(settings.auth_issuer, keys, audiences, algorithms))
    if dev_issuer_trusted(settings, nhs_urls):
        key = load_or_create_key(settings.dev_issuer_key_path)
        issuers.append(TrustedIssuer(DEV_ISSUER, StaticKeys(public_key_set(key)), audiences, ("RS256",)))
        log.warning("development token issuer trusted (sandbox): tokens from 'nhs-fhir-facade token' are accepted")
    if not issuers:
        raise AccessConfigError(
            "No token issuer: set FACADE_AUTH_ISSUER and its JWKS (or run in sandbox mode, "
            "where the development issuer is trusted)"
        )
    return issuers


def build_access(
    settings: Settings,
    nhs_urls: Sequence[str | None],
    session: aiohttp.ClientSession,
    directory: PatientDirectory,
    trail: AuditTrail,
    quota: CallerQuota | None = None,
) -> AccessControl:
    env = nhs_environment(settings, nhs_urls)
    if not settings.relationship_required and env == "production":
        raise AccessConfigError("FACADE_RELATIONSHIP_REQUIRED=false is refused against NHS production")
    table = load_role_table(settings.access_policy)
    verifier = TokenVerifier(
        trusted_issuers(settings, nhs_urls, session),
        leeway=settings.auth_leeway_seconds,
        max_lifetime=settings.auth_max_token_lifetime,
    )
    return AccessControl(
        verifier=verifier,
        table=table,
        policy=AccessPolicy(table, directory, relationship_required=settings.relationship_required),
        trail=trail,
        observer=settings.public_base_url(),
        user_token_source=settings.nhs_user_token_source,
        quota=quota,
        leeway=settings.auth_leeway_seconds,
    )
