"""create_app(settings): the composition root.

Wires settings, the aiohttp session, the embedded NHS emulator (for every upstream left
unset), the NHS clients and the providers, all inside the lifespan: nothing connects at
import time and everything opened is closed on shutdown. Providers come from the NHS
sources (server/sources/registry.py), each decorated in the one ordered list below.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount

from server.access.directory import PASDirectory
from server.access.middleware import AccessMiddleware
from server.access.quota import CallerQuota
from server.access.trail_wiring import open_audit_trail
from server.access.wiring import build_access
from server.cache.lifecycle import open_cache
from server.cache.provider import with_cache
from server.console import wiring as console_wiring
from server.console.shared_traces import COLLECTION as CONSOLE_TRACES
from server.fhir.edge import edge_middleware
from server.fhir.error_handlers import EXCEPTION_HANDLERS
from server.fhir.middleware import RequestIdMiddleware
from server.fhir.read_shortcut import ReadShortcut
from server.fhir.request_limits import RequestLimits
from server.fhir.route_shapes import ShapeCachedRouter
from server.fhir.routes import ROUTES
from server.fhir.xml_format import XMLFormatMiddleware
from server.health import Readiness
from server.mongodb import open_mongo_client
from server.nhs.auth.profiles import build_auth
from server.nhs.shared_rate_limiter import COLLECTION as RATE_BUDGET_COLLECTION
from server.page_snapshots import open_snapshots
from server.pas.routes import create_pas_app
from server.pas.wiring import build_pas, open_mllp, open_pas_store, pas_only_providers, with_pas
from server.providers.audit_event import AuditEventProvider
from server.providers.base import ResourceProvider
from server.providers.error_handler import UPSTREAM_EXCEPTION_HANDLERS
from server.providers.registry import ProviderRegistry
from server.runtime import Runtime
from server.sandbox.embedded import EmbeddedEmulator
from server.settings import Settings
from server.sources.base import Source
from server.sources.config import SourceConfig
from server.sources.registry import SOURCES
from server.sources.wiring import Wiring

log = logging.getLogger("facade")

# Compress only bodies worth it. Anything under ~14 KB reaches the client in the first TCP
# window whether compressed or not, so gzip below that saves wire bytes but no round trip,
# while every compression costs the one event loop tens of microseconds (a 1.5 KB Patient
# at level 9: ~75 us, more than Starlette spends on the whole request). 4 KB keeps single
# resources plain and still compresses bundles and the CapabilityStatement; level 6 (zlib's
# default) is about twice as fast as Starlette's 9 on JSON for ~1% more bytes.
GZIP_MINIMUM_SIZE = 4096
GZIP_LEVEL = 6
PAS_MOUNT = "/pas/v1"


def create_app(settings: Settings | None = None, sources: Sequence[Source] = SOURCES) -> Starlette:
    settings = settings or Settings()
    pas_app = create_pas_app()
    console = console_wiring.build_console(settings, sources)  # None when off: no routes, no tracing

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            config = SourceConfig.resolve(settings, sources)
            emulator_url = settings.emulator_url.rstrip("/") if settings.emulator_url else None
            if emulator_url is None and config.emulator_needed(settings):
                emulator = await stack.enter_async_context(EmbeddedEmulator(sources))
                emulator_url = emulator.base_url
                log.info("sandbox mode: embedded NHS emulator at %s", emulator_url)
            # One session for every caller's NHS calls, so no cookie jar: a cookie NHS (or a
            # gateway in front of it) sets on one caller's answer must never ride on another's.
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar())
            )
            upstreams = config.upstreams(emulator_url)
            if console is not None:
                console.connect(upstreams, session)  # fault controls reach the emulator through these
            auth = await build_auth(settings, session, emulator_url)
            # Exit runs in reverse: token renewals are cancelled and awaited before the session closes.
            stack.push_async_callback(auth.aclose)
            # One client, shared: the cache, the PAS store, the audit trail, page snapshots, the
            # console's traces and the NHS rate budgets all live in it when FACADE_MONGODB_URI is set (one state per deployment).
            mongo = await stack.enter_async_context(open_mongo_client(settings))
            if console is not None and mongo is not None:  # traces any worker can show (issue 12)
                stack.push_async_callback(console.share(mongo[settings.mongodb_database][CONSOLE_TRACES]).aclose)
            wiring = Wiring(
                settings=settings,
                session=session,
                upstreams=upstreams,
                source_settings=config.settings,
                rate_limits=config.rate_limits(settings),
                nhs_urls=tuple(config.configured_urls()),
                auth=auth,
                shared_rate_budget=mongo[settings.mongodb_database][RATE_BUDGET_COLLECTION] if mongo else None,
            )
            stack.push_async_callback(wiring.aclose)  # shared upstream flights, before the session closes
            cache = await stack.enter_async_context(open_cache(settings, mongo, config.freshness()))
            if cache is not None:
                stack.push_async_callback(cache.flights.aclose)  # cache misses in flight, before the store closes
            registry = ProviderRegistry()
            pas_store = await stack.enter_async_context(open_pas_store(settings, mongo))
            pas = build_pas(wiring, registry, settings.public_base_url(), store=pas_store)
            pas_app.state.pas = pas

            # What answers a request, innermost first. Each provider maps one NHS API's answers
            # (its client brings retries, breaker, rate and concurrency limits); then:
            decoration: tuple[Callable[[ResourceProvider], ResourceProvider], ...] = (
                lambda p: with_cache(p, cache),  # 1. read-through cache of the NHS answers
                lambda p: with_pas(p, pas.service),  # 2. PAS records added: a store of record, never cached
            )
            # 3. Outermost, for every type: access control and audit (AccessMiddleware, and the
            #    Guard the handlers consult before and after each provider call).
            upstream_access: dict[str, tuple[tuple[str, str], ...]] = {}
            for source in sources:
                for offer in source.offers:
                    wired_before = len(wiring.accesses)
                    provider = offer.build(wiring)
                    upstream_access[provider.resource_type] = tuple(dict.fromkeys(wiring.accesses[wired_before:]))
                    for decorate in decoration:
                        provider = decorate(provider)
                    registry.register(provider)
            for provider in pas_only_providers(registry, pas.service):  # PAS types no source serves
                registry.register(provider)
            trail = await stack.enter_async_context(open_audit_trail(settings, mongo))
            app.state.access = build_access(
                settings,
                config.configured_urls(),
                session,
                PASDirectory(pas_store),
                trail,
                CallerQuota(settings.caller_nhs_rate, settings.caller_nhs_burst),
            )
            registry.register(AuditEventProvider(trail))  # the audit trail itself: never cached
            # HL7 v2 over MLLP when FACADE_MLLP_PORT is set: the same intake as POST /pas/v1/hl7.
            app.state.mllp = await stack.enter_async_context(
                open_mllp(
                    settings,
                    mongo,
                    pas,
                    lambda: app.state.access,
                    keep_trace=console.keep if console is not None else None,  # MLLP messages on the console
                    redact_traces=console is not None and console.mode == "live",
                )
            )
            app.state.runtime = Runtime(
                settings=settings,
                base_url=settings.public_base_url(),
                registry=registry,
                snapshots=await open_snapshots(settings, mongo),
                cache=cache.store if cache is not None else None,
                upstream_modes=upstreams.modes(),
                nhs_urls=tuple(config.configured_urls()),
                upstream_access=upstream_access,
            )
            app.state.readiness = Readiness(
                mongo=mongo,
                nhs_auth=auth.application,
                mongo_timeout=2 * settings.mongodb_timeout_ms / 1000,  # a ping: selection plus one round trip
                token_timeout=min(settings.upstream_request_budget, 5.0),
            )
            log.info("façade ready: %d resource types", len(registry))
            yield
        log.info("façade stopped: connections and stores closed")

    app = Starlette(
        routes=[Mount(PAS_MOUNT, app=pas_app), *console_wiring.routes(console), *ROUTES],
        middleware=[
            # Plain reads (GET /{type}/{id}, no query, no body, JSON) in one edge that does what
            # the layers below do, when they have nothing more for a read (server/fhir/read_shortcut.py).
            *_read_shortcut(settings, console_on=console is not None),
            # Outermost, so every body below can be compressed, the XML too.
            Middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL),
            # FHIR XML when asked, for every FHIR answer and error below; PAS REST stays JSON.
            Middleware(XMLFormatMiddleware, json_only=(f"{PAS_MOUNT}/",)),
            Middleware(RequestIdMiddleware),
            # The console's per-request trace, inside the request id it is filed under (issue 12).
            *console_wiring.middleware(console),
            # CORS when configured (a preflight carries no token), no-store, then authenticate
            # and audit every access (fail closed), then the size limits (server/fhir/edge.py).
            *edge_middleware(settings, Middleware(AccessMiddleware)),
        ],
        exception_handlers={**EXCEPTION_HANDLERS, **UPSTREAM_EXCEPTION_HANDLERS},
        lifespan=lifespan,
    )
    # No 307 to the slash-less path: it has an empty, non-FHIR body, and it turns a read of
    # an id that decodes to "/" (GET /Patient/%2F) into a search. Such paths get the
    # 404 OperationOutcome of any unknown path instead.
    app.router.redirect_slashes = False
    pas_app.router.redirect_slashes = False
    # The same table, walked once per shape of path (server/fhir/route_shapes.py).
    app.router = ShapeCachedRouter(app.router.routes, lifespan=lifespan, redirect_slashes=False)
    return app


def _read_shortcut(settings: Settings, *, console_on: bool) -> list[Middleware]:
    """The read shortcut, unless the stack does more for a read than it does: the console
    traces each request, and CORS adds `Vary: Origin` to every answer."""
    if console_on or settings.cors_allow_origins or not settings.read_shortcut:
        return []
    return [
        Middleware(
            ReadShortcut,
            limits=RequestLimits.from_settings(settings),
            gzip_minimum_size=GZIP_MINIMUM_SIZE,
            gzip_level=GZIP_LEVEL,
        )
    ]
