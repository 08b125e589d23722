"""Command line: `nhs-fhir-facade serve` runs the façade (Granian worker processes),
`emulator` runs the NHS emulator alone, `keygen` creates the RS512 signing key pair whose
JWKS is registered with NHS, `token` prints an access token of the development issuer
(trusted by a sandbox façade only)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import logging.config
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from pydantic import ValidationError
from starlette.applications import Starlette

from server.pas.mllp import tls_context
from server.serving import check_can_listen, hypercorn_config, serve_workers
from server.settings import Settings

# Library loggers that print data, not events, at DEBUG: pymongo.command logs whole
# commands and replies (cache keys name NHS numbers; cached documents are Patients).
DATA_LOGGERS = ("pymongo",)
# The process id tells the lines of one Granian worker from another's.
LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"
# FACADE_LOG_FORMAT=json: one JSON object per line (named, not imported: workers resolve it).
JSON_FORMATTER = "server.log_setup.JSONFormatter"
# The plain line, its timestamp formatted once per second (server/log_setup.py).
PLAIN_FORMATTER = "server.log_setup.PlainFormatter"
# Lines logged in one event-loop iteration leave in one write (server/log_setup.py says why).
BATCHED_HANDLER = "server.log_setup.LoopBatchedStreamHandler"
# What each Granian worker imports and calls to build its app (facade_app below).
FACADE_FACTORY = "server.__main__:facade_app"

log = logging.getLogger("facade")


def logging_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """The one logging set-up (a dictConfig): every line to stderr in one format (text, or
    JSON objects: server/log_setup.py), data loggers no lower than INFO whatever the level.
    Granian applies it in its main process and in each worker; `emulator` and `serve` before
    Granian start apply it with _setup_logging."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING or ERROR)")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"()": JSON_FORMATTER} if log_format == "json" else {"()": PLAIN_FORMATTER, "fmt": LOG_FORMAT}
        },
        "handlers": {"stderr": {"class": BATCHED_HANDLER, "formatter": "plain", "stream": "ext://sys.stderr"}},
        "root": {"level": numeric, "handlers": ["stderr"]},
        "loggers": {
            # Granian's own lines (start, workers, stop) in the same format and stream.
            "_granian": {"handlers": [], "propagate": True},
            **{name: {"level": max(logging.INFO, numeric)} for name in DATA_LOGGERS},
        },
    }


def _setup_logging(level: str) -> None:
    logging.config.dictConfig(logging_config(level))


async def _serve_forever(app: object, bind: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(app, hypercorn_config([bind]), shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def facade_app() -> Starlette:
    """The app of one Granian worker, built in that process from the FACADE_* environment
    (a worker is a process of its own: settings reach it through the environment only)."""
    from server.app import create_app

    app = create_app(Settings())
    # The ~75k objects made by imports live as long as the process: moved out of the
    # collector's generations, full collections stop rescanning them (measured: GC cost per
    # cached read 7.5 -> 0.8 us, and no 30 ms full-collection pauses in the tail).
    # The collector's thresholds stay Python's: young collections every 20,000 allocations
    # instead of 700 saved about 1.7 % of a cached read's CPU, but bench/soak.py's workers
    # then grew (+5 MiB a minute against +2; arenas taken at the peak are not given back).
    gc.freeze()
    return app


def _mllp_refusal(settings: Settings) -> str | None:
    """Why the MLLP listener could not start, checked before Granian does (each worker would
    fail its start-up with a traceback): its port taken, or its TLS files unreadable."""
    if settings.mllp_port is None:
        return None
    host = settings.mllp_host or settings.host
    try:
        check_can_listen(host, settings.mllp_port)
    except OSError as exc:
        return f"MLLP cannot listen on {_bind(host, settings.mllp_port)}: {exc.strerror or exc}"
    try:
        tls_context(settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_tls_client_ca)
    except OSError as exc:  # a missing file, or ssl.SSLError for one that is not PEM
        return f"MLLP TLS files (FACADE_MLLP_TLS_*) cannot be used: {exc.strerror or exc}"
    return None


def _fresh_metrics_dir() -> None:
    """Workers are processes: Prometheus counters are summed from files in
    PROMETHEUS_MULTIPROC_DIR (server/metrics_endpoint.py). Set it to a new private directory
    unless the operator chose one, and empty a chosen one: files left by an earlier run
    would be added to this one's counts."""
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if chosen:
        for stale in Path(chosen).glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="nhs-fhir-facade-metrics-")


def cmd_serve(args: argparse.Namespace) -> int:
    # The flags win over FACADE_*: written into the environment the workers inherit.
    for name, value in (("HOST", args.host), ("PORT", args.port), ("WORKERS", args.workers)):
        if value is not None:
            os.environ[f"FACADE_{name}"] = str(value)
    try:
        settings = Settings()
    except ValidationError as exc:  # one line per bad setting, never a traceback or exit 0
        for error in exc.errors():
            where = "_".join(str(part) for part in error["loc"]).upper()
            print(f"serve: FACADE_{where}: {error['msg']}", file=sys.stderr)
        return 2
    bind = _bind(settings.host, settings.port)
    if settings.workers > 1 and not settings.mongodb_uri:
        print(
            f"serve: {settings.workers} workers need FACADE_MONGODB_URI: without MongoDB each process keeps its "
            "own cache, pages and PAS records, and a purge in one cannot reach the others (use 1 worker)",
            file=sys.stderr,
        )
        return 2
    try:
        log_config = logging_config(settings.log_level, settings.log_format)
        check_can_listen(settings.host, settings.port)
    except ValueError as exc:
        print(f"serve: FACADE_LOG_LEVEL: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"serve: cannot listen on {bind}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    refusal = _mllp_refusal(settings)
    if refusal:
        print(f"serve: {refusal}", file=sys.stderr)
        return 2
    logging.config.dictConfig(log_config)
    if settings.workers > 1:
        _fresh_metrics_dir()
    log.info(
        "nhs-fhir-facade listening on %s with %d worker(s) (base URL %s)",
        bind,
        settings.workers,
        settings.public_base_url(),
    )
    serve_workers(
        FACADE_FACTORY,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config,
        log_level=settings.log_level,
    )
    log.info("nhs-fhir-facade stopped")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from server.sandbox.app import create_emulator_app

    _setup_logging("INFO")
    log.info("NHS emulator listening on %s", _bind(args.host, args.port))
    asyncio.run(_serve_forever(create_emulator_app(), _bind(args.host, args.port)))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    import json

    from server.nhs.auth.keys import generate_key_pair, jwks, public_jwk, write_key_pair

    if not args.kid or any(c in args.kid for c in "/\\") or args.kid.startswith("."):
        print("keygen: --kid must be a plain name (it becomes the file name)", file=sys.stderr)
        return 2
    pair = generate_key_pair(args.bits)
    try:
        private_path, public_path = write_key_pair(pair, Path(args.out), args.kid)
    except (FileExistsError, OSError) as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 1
    print(
        f"private key: {private_path} (mode 0600; set FACADE_PRIVATE_KEY_PATH, FACADE_KEY_ID={args.kid})",
        file=sys.stderr,
    )
    print(f"public key:  {public_path}", file=sys.stderr)
    print("register this JWKS with your NHS app (developer portal):", file=sys.stderr)
    print(json.dumps(jwks(public_jwk(pair.public_numbers, args.kid)), indent=2))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a development access token as the last line of output (stdout); notes go to stderr."""
    from server.access.claims import NHS_NUMBER, PURPOSE
    from server.access.dev_issuer import DEV_ISSUER, issue_token, load_or_create_key
    from server.access.scopes import parse_scope

    if args.patient is not None and not NHS_NUMBER.fullmatch(args.patient):
        print("token: --patient takes a 10-digit NHS number", file=sys.stderr)
        return 2
    if args.purpose is not None and not PURPOSE.fullmatch(args.purpose.upper()):
        print("token: --purpose takes a v3 PurposeOfUse code such as TREAT or ETREAT", file=sys.stderr)
        return 2
    unknown = [s for s in args.scope.split() if parse_scope(s) is None]
    if unknown:
        print(f"token: note: {' '.join(unknown)} grant(s) no data access here", file=sys.stderr)
    settings = Settings()
    key_path = settings.dev_issuer_key_path
    key = load_or_create_key(key_path)
    token = issue_token(
        key,
        audience=args.audience or settings.public_base_url(),
        scope=args.scope,
        subject=args.subject,
        roles=args.role or ["clinician"],
        patient=args.patient,
        purpose=(args.purpose or "TREAT").upper(),
        lifetime=args.lifetime,
    )
    print(
        f"token: issuer {DEV_ISSUER}, audience {args.audience or settings.public_base_url()}, "
        f"valid {args.lifetime} s (trusted by a sandbox façade only)",
        file=sys.stderr,
    )
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nhs-fhir-facade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the FHIR façade (settings from FACADE_* variables)")
    serve.add_argument("--host", default=None, help="overrides FACADE_HOST")
    serve.add_argument("--port", type=int, default=None, help="overrides FACADE_PORT")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes, overrides FACADE_WORKERS (default 1; more than 1 needs FACADE_MONGODB_URI)",
    )
    serve.set_defaults(func=cmd_serve)
    emu = sub.add_parser("emulator", help="run the project's NHS API emulator on its own")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=9100)
    emu.set_defaults(func=cmd_emulator)
    keygen = sub.add_parser("keygen", help="create an RS512 key pair for NHS signed-JWT auth and print its JWKS")
    keygen.add_argument("--kid", required=True, help="key id: the JWT 'kid' header and the file name")
    keygen.add_argument("--out", required=True, help="directory for {kid}.pem (0600) and {kid}.pub.pem")
    keygen.add_argument(
        "--bits", type=int, default=4096, choices=(2048, 3072, 4096), help="RSA key size (NHS recommends 4096)"
    )
    keygen.set_defaults(func=cmd_keygen)
    token = sub.add_parser("token", help="print a development access token (sandbox façades trust it)")
    token.add_argument("--scope", required=True, help='SMART scopes, e.g. "user/*.rs" or "patient/*.rs"')
    token.add_argument(
        "--role",
        action="append",
        default=None,
        help="façade role or NHS job role code; repeat for several (default: clinician)",
    )
    token.add_argument("--patient", default=None, help="patient context: the NHS number patient/ scopes are for")
    token.add_argument("--purpose", default=None, help="purpose of use, v3 code (default: TREAT)")
    token.add_argument("--subject", default="dev-user", help="the user's id (sub)")
    token.add_argument("--audience", default=None, help="aud (default: the façade's base URL from FACADE_*)")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(func=cmd_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
