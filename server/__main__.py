"""Command line: `nhs-fhir-facade serve` runs the façade, `emulator` runs the NHS emulator alone."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Sequence

from hypercorn.asyncio import serve as hypercorn_serve

from server.serving import hypercorn_config
from server.settings import Settings


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)


async def _serve_forever(app: object, bind: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(app, hypercorn_config([bind]), shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    _setup_logging(settings.log_level)
    logging.getLogger("facade").info("nhs-fhir-facade listening on %s (base URL %s)",
                                     _bind(settings.host, settings.port), settings.public_base_url())
    asyncio.run(_serve_forever(create_app(settings), _bind(settings.host, settings.port)))
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from server.sandbox.app import create_emulator_app

    _setup_logging("INFO")
    logging.getLogger("facade").info("NHS emulator listening on %s", _bind(args.host, args.port))
    asyncio.run(_serve_forever(create_emulator_app(), _bind(args.host, args.port)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nhs-fhir-facade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the FHIR façade (settings from FACADE_* variables)")
    serve.add_argument("--host", default=None, help="overrides FACADE_HOST")
    serve.add_argument("--port", type=int, default=None, help="overrides FACADE_PORT")
    serve.set_defaults(func=cmd_serve)
    emu = sub.add_parser("emulator", help="run the project's NHS API emulator on its own")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=9100)
    emu.set_defaults(func=cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
