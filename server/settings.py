"""The façade-wide settings: one object, one environment prefix (FACADE_), safe defaults.

Each NHS source owns its settings (server/sources/*/settings.py, also FACADE_*); values
for them given in code (`Settings(pds_base_url=...)`) ride along here as extras, and
server.sources.config hands them to their source, refusing any no source declares.
Every upstream base URL left unset means "use the project's own NHS emulator", so a
fresh checkout runs with no external service at all (sandbox mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.access.environments import classify_url, environment
from server.pas.hl7_senders import SANDBOX_SENDERS as SANDBOX_HL7_SENDERS
from server.pas.hl7_senders import parse_sender


class Settings(BaseSettings):
    """Runtime configuration, read from FACADE_* environment variables."""

    # extra="allow": source settings given in code; unknown environment variables are still ignored.
    model_config = SettingsConfigDict(env_prefix="FACADE_", extra="allow")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        description="Granian worker processes of `nhs-fhir-facade serve`; more than 1 needs mongodb_uri "
        "(the in-memory stores are per process).",
    )
    base_url: str = Field(
        default="",
        description="Public base URL used in every link; defaults to http://{host}:{port}.",
    )

    end_user_ods: str | None = Field(default=None, description="Sent as NHSD-End-User-Organisation-ODS when set.")

    upstream_connect_timeout: float = Field(default=3.0, gt=0)
    upstream_read_timeout: float = Field(default=10.0, gt=0)
    upstream_retry_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts per upstream request, the first included."
    )
    upstream_backoff_base: float = Field(
        default=0.2, ge=0, description="Seconds: backoff before retry n is uniform in [0, base * 2**(n-1)]."
    )
    upstream_backoff_max: float = Field(default=2.0, ge=0, description="Cap on one backoff wait, seconds.")
    upstream_request_budget: float = Field(
        default=15.0, gt=0, description="Total seconds for one upstream request, all retries and waits included."
    )
    upstream_breaker_threshold: int = Field(
        default=5, ge=1, description="Consecutive 5xx/timeouts/resets that open an API's circuit."
    )
    upstream_breaker_open_seconds: float = Field(
        default=30.0, gt=0, description="Seconds a circuit stays open before one probe request."
    )
    upstream_concurrency: int = Field(default=20, ge=1, description="Requests in flight per NHS API.")
    upstream_rate_limits: dict[str, float] | None = Field(
        default=None,
        description='Client-side requests/second per NHS API (JSON, e.g. {"PDS": 5}); unlisted APIs unlimited. '
        "Unset = what each source publishes (PDS: 5).",
    )
    upstream_single_flight: bool = Field(default=True, description="Concurrent identical upstream GETs share one call.")

    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=100, ge=1)
    page_snapshot_ttl: float = Field(default=600.0, gt=0, description="Seconds a search result stays pageable.")
    page_snapshot_limit: int = Field(default=1000, ge=1)

    pas_profile: str = Field(
        default="pas/reference_pas",
        description="PAS mapping profile: a name under mappings/ or a path to a YAML file.",
    )
    pas_hl7_profile: str = Field(
        default="hl7/adt_pid", description="HL7 v2 ADT mapping profile (name under mappings/ or a path)."
    )
    pas_trace_fuzzy_min_score: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Lowest PDS score accepted from a single fuzzy-search candidate when tracing NHS numbers.",
    )

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text = one readable line per event; json = one JSON object per line (for a log "
        "pipeline), the request lines with request id, trace id, type, interaction, status, duration, "
        "cache result and NHS calls. Neither ever holds a path, a query or an id.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer secret a Prometheus scraper sends to GET /metrics; unset = /metrics open in "
        "sandbox mode only, refused (403) otherwise.",
    )

    # NHS API platform authentication (reference: shared/reference/nhs-apis.md section 3).
    auth_mode: Literal["none", "signed-jwt"] = Field(
        default="none",
        description="none = no credentials (emulator, open sandbox); signed-jwt = NHS application-restricted "
        "signed JWT plus user-restricted CIS2 tokens.",
    )
    api_key: SecretStr | None = Field(default=None, description="NHS app API key: the JWT iss and sub.")
    key_id: str | None = Field(default=None, description="kid of the registered public key.")
    private_key_path: Path | None = Field(default=None, description="PEM file of the RS512 signing key.")
    private_key: SecretStr | None = Field(default=None, description="PEM text of the signing key (instead of a file).")
    token_url: str | None = Field(
        default=None,
        description="NHS OAuth2 token endpoint; unset = the embedded emulator's /oauth2/token.",
    )
    smart_authorize_url: str | None = Field(
        default=None,
        description="NHS OAuth2 authorize endpoint (combined auth), published in /.well-known/smart-configuration "
        "and the CapabilityStatement; the façade itself runs no authorization server.",
    )
    user_token_mode: Literal["passthrough", "exchange"] = Field(
        default="passthrough",
        description="User-restricted APIs: forward the caller's bearer token, or exchange it (CIS2 id_token) "
        "at the token endpoint.",
    )
    # Read-through cache (server/cache/): in memory unless a MongoDB URI is set.
    cache_enabled: bool = Field(default=True, description="Read-through cache for every NHS-backed read/search.")
    mongodb_uri: str | None = Field(
        default=None, description="MongoDB URI for the shared cache; unset = bounded in-memory cache."
    )
    mongodb_database: str = Field(default="nhs_fhir_facade", description="Database holding the cache collection.")
    mongodb_timeout_ms: int = Field(
        default=500,
        ge=50,
        description="Server selection and connect timeout (ms): what a dead MongoDB costs one request.",
    )
    cache_max_entries: int = Field(default=10_000, ge=1, description="Entries the in-memory cache holds (LRU).")
    cache_near_seconds: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="With MongoDB: seconds a worker keeps its own copy of a cache entry it read (0 = none). Also the "
        "longest a restricted-patient purge or a delete through another worker or replica takes to reach this one "
        "(server/cache/near.py).",
    )
    cache_ttl_default: float = Field(default=300.0, gt=0, description="Seconds an entry is fresh, unless set per type.")
    cache_ttl_by_type: dict[str, float] = Field(
        default_factory=dict,
        description='Freshness per type, as JSON ({"Patient": 600}); wins over what each source declares.',
    )
    cache_stale_if_error: float = Field(
        default=3600.0,
        ge=0,
        description="Max age (s) of a cached copy served, with a warning, when the NHS API fails; 0 = never.",
    )

    # Request limits (issue 8): what one request may cost the shared event loop before any
    # work is done on it (server/fhir/request_limits.py), plus the browser and MongoDB edges.
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body (bytes), declared or streamed; larger is 413 before it is read whole.",
    )
    max_query_chars: int = Field(
        default=8192,
        ge=256,
        description="Longest query string (characters, as sent); longer is 414.",
    )
    max_list_items: int = Field(
        default=100,
        ge=1,
        description="Most parameters one search may send, and most _elements names, _sort keys or "
        "comma-separated OR values one parameter may list; more is 400.",
    )
    cors_allow_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the façade (JSON list, e.g. ["https://app.example"]); '
        "empty = no CORS headers at all.",
    )
    read_shortcut: bool = Field(
        default=True,
        description="Answer plain reads (GET /{type}/{id}: no query, no body, JSON) in one edge instead of the "
        "middleware stack, with the same answer and audit (server/fhir/read_shortcut.py); off = the full stack "
        "for every request. Never used while the console or CORS is on.",
    )
    mongodb_password_file: Path | None = Field(
        default=None,
        description="File holding the MongoDB password (e.g. a compose secret), read at start; the URI then "
        "carries the user name only.",
    )

    # Inbound access control (server/access/): who may call the façade, and the audit trail.
    auth_issuer: str | None = Field(
        default=None,
        description="Issuer (iss) of the access tokens the façade accepts: the hospital's "
        "identity provider or NHS CIS2. Needs auth_jwks_url or auth_jwks_file.",
    )
    auth_jwks_url: str | None = Field(
        default=None, description="JWKS URL of auth_issuer (cached; re-read on an unknown kid, at most every 30 s)."
    )
    auth_jwks_file: Path | None = Field(default=None, description="JWKS file of auth_issuer, instead of a URL.")
    auth_audience: list[str] = Field(
        default_factory=list,
        description="Accepted aud values; empty = the façade's public base URL.",
    )
    auth_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"],
        description="Signature algorithms accepted (asymmetric only; none and HS* are always refused).",
    )
    auth_leeway_seconds: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    auth_max_token_lifetime: float = Field(
        default=86_400.0,
        gt=0,
        description="Longest token lifetime accepted (exp - iat, or exp - now without iat).",
    )
    dev_issuer: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Trust the development token issuer (nhs-fhir-facade token): auto = only when every NHS "
        "API is the emulator; on = also against NHS sandbox/integration; never against production.",
    )
    emulator_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts that run the project's NHS emulator (e.g. the compose service 'emulator'): counted as "
        "sandbox for the development issuer; an nhs.uk host is never one.",
    )
    emulator_url: str | None = Field(
        default=None,
        description="Base URL of a running NHS emulator (e.g. the compose service: http://emulator:9100): every NHS "
        "API without its own URL is served there instead of by an embedded emulator. Its host must be "
        "loopback or one of emulator_hosts.",
    )
    console: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="The testers' console at /_console (issue 12): auto = on when every NHS API is the emulator "
        "(sandbox); on = also against live NHS APIs (traces redacted, read by auditor/admin only); off = none.",
    )
    console_trace_capacity: int = Field(
        default=500,
        ge=10,
        le=10_000,
        description="Request traces the console keeps per process (a ring: the oldest go first).",
    )
    dev_issuer_key_path: Path | None = Field(
        default=None,
        description="The development issuer's key (default: per-user config directory).",
    )
    access_policy: Path | None = Field(
        default=None,
        description="Role table (YAML); unset = server/access/roles.yaml.",
    )
    nhs_user_token_source: Literal["header", "inbound"] = Field(
        default="header",
        description="Where the NHS CIS2 credential for user-restricted NHS APIs comes from: 'header' = "
        "X-NHS-User-Token (the inbound token is the hospital's own); 'inbound' = the inbound "
        "bearer token is itself a CIS2 token (auth_issuer is CIS2) and goes on to NHS.",
    )
    relationship_required: bool = Field(
        default=True,
        description="Clinical types need a legitimate relationship (PAS registration or the token's patient "
        "context) unless break-glass; false only outside NHS production.",
    )
    audit_spool_dir: Path | None = Field(
        default=None,
        description="Directory of the local audit spool (used while MongoDB is down); "
        "default: per-user state directory.",
    )
    auth_token_url: str | None = Field(
        default=None,
        description="Token endpoint of auth_issuer, where clients get access tokens for the façade; published "
        "in /.well-known/smart-configuration and /metadata (unset and nhs_user_token_source=inbound: "
        "the NHS token_url).",
    )
    auth_authorize_url: str | None = Field(
        default=None,
        description="Authorization endpoint of auth_issuer, published like auth_token_url (unset and "
        "nhs_user_token_source=inbound: the NHS smart_authorize_url).",
    )

    # Fan-out and quota (issue 8): what one search page, and one caller, may cost in NHS calls.
    max_include_reads: int = Field(
        default=20,
        ge=0,
        description="_include reads one search page may start; the rest become one warning.",
    )
    max_revinclude_searches: int = Field(
        default=10,
        ge=0,
        description="_revinclude searches (one per match and rev-include) one page may start; the rest become "
        "one warning.",
    )
    max_batch_entries: int = Field(
        default=20,
        ge=1,
        description="Entries one batch Bundle (POST [base]) may hold; more is a 400 too-costly.",
    )
    batch_concurrency: int = Field(
        default=4,
        ge=1,
        description="Entries of one batch run at once (each is a request as if sent alone).",
    )
    caller_nhs_rate: float = Field(
        default=2.0,
        gt=0,
        description="NHS requests per second each caller (token issuer + subject + client) may send, sustained; "
        "over it the caller gets 429 with Retry-After. Cache hits and shared calls cost nothing.",
    )
    caller_nhs_burst: float = Field(
        default=60.0,
        ge=1,
        description="NHS requests a caller may send at once before caller_nhs_rate applies.",
    )

    def public_base_url(self) -> str:
        """The base URL the façade writes into links (no trailing slash)."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    # PAS (issue 8)
    pas_hl7_allowed_senders: list[str] | None = Field(
        default=None,
        description='HL7 senders accepted (JSON list of "APP|FACILITY" or "APP|*", MSH-3|MSH-4); unset = '
        'the sandbox sender "PAS|RX1" when every NHS API is the emulator, else none.',
    )

    # HL7 v2 over MLLP (issue 13): the ADT intake of POST /pas/v1/hl7 on a TCP port.
    mllp_port: int | None = Field(
        default=None, ge=0, le=65535, description="TCP port of the MLLP listener for HL7 v2 ADT; unset = no listener."
    )
    mllp_host: str | None = Field(default=None, description="Address the MLLP listener binds; unset = FACADE_HOST.")
    mllp_max_message_bytes: int = Field(
        default=1_048_576, ge=1024, le=64 * 1_048_576, description="Longest HL7 message accepted over MLLP (bytes)."
    )
    mllp_idle_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="An MLLP connection with no complete message for this long is closed."
    )
    mllp_max_connections: int = Field(
        default=64, ge=1, le=10_000, description="MLLP connections open at once per worker; more are closed at once."
    )
    mllp_dedup_seconds: float = Field(
        default=86_400.0,
        ge=0,
        le=30 * 86_400,
        description="How long a message's MSH-3/MSH-4/MSH-10 is remembered, so a resend is ACKed again but applied once.",
    )
    mllp_tls_cert: str | None = Field(default=None, description="PEM certificate (chain) for MLLP over TLS.")
    mllp_tls_key: str | None = Field(default=None, description="PEM private key for MLLP over TLS.")
    mllp_tls_client_ca: str | None = Field(
        default=None, description="PEM CA bundle: when set, MLLP senders must present a client certificate it signed."
    )

    @model_validator(mode="after")
    def _emulator_url_is_an_emulator(self) -> Settings:
        # Unset NHS URLs count as the emulator for the sandbox conveniences (the development
        # issuer): the URL that then serves them must be one.
        if self.emulator_url is not None and classify_url(self.emulator_url, self.emulator_hosts) != "emulator":
            raise ValueError("FACADE_EMULATOR_URL must be a loopback address or a host in FACADE_EMULATOR_HOSTS")
        return self

    @model_validator(mode="after")
    def _mllp_tls_complete(self) -> Settings:
        if (self.mllp_tls_cert is None) != (self.mllp_tls_key is None):
            raise ValueError("FACADE_MLLP_TLS_CERT and FACADE_MLLP_TLS_KEY go together (MLLP over TLS needs both)")
        if self.mllp_tls_client_ca is not None and self.mllp_tls_cert is None:
            raise ValueError("FACADE_MLLP_TLS_CLIENT_CA needs FACADE_MLLP_TLS_CERT and FACADE_MLLP_TLS_KEY (TLS first)")
        return self

    @field_validator("pas_hl7_allowed_senders")
    @classmethod
    def _hl7_senders_parse(cls, entries: list[str] | None) -> list[str] | None:
        for entry in entries or ():
            parse_sender(entry)  # a ValueError here stops the start-up, naming the entry
        return entries

    def pas_hl7_senders(self, nhs_urls: list[str | None]) -> list[str]:
        """The effective HL7 sender allow-list: as configured; unset = the sandbox senders when
        every NHS API is the emulator (unset or loopback), else empty (every message refused).
        `nhs_urls`: every configured NHS API URL (server.sources.config.SourceConfig.configured_urls).
        Not "an emulator is needed": that is true when any one API is the emulator, so a façade
        with live PDS would accept the sandbox sender, and false for tests and local runs that
        point every API at a loopback emulator."""
        if self.pas_hl7_allowed_senders is not None:
            return list(self.pas_hl7_allowed_senders)
        urls = list(nhs_urls)
        if self.auth_mode == "signed-jwt":
            urls.append(self.token_url)
        return list(SANDBOX_HL7_SENDERS) if environment(urls) == "emulator" else []
