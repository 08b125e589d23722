"""The console's fault kinds, translated to the emulator's /_control/faults (server/sandbox/faults.py).

One kind per failure a tester wants to watch the façade handle, per NHS API:
- latency: answer normally after `delay` seconds;
- status: answer `status` (an OperationOutcome), optionally with `retry_after`;
- rate_limit: answer 429, with `retry_after` when given (without one: NHS's bare 429);
- timeout: answer only after the façade has given up (its per-request budget, plus a
  second), unless `delay` says how long;
- reset: drop the connection mid-answer;
- malformed: a 200 whose body is truncated JSON;
- wrong_type: a 200 with a well-formed resource of a type the API never answers.
`times` is how many matching requests get it (-1: every one until cleared). The fault
applies under the API's emulator path, so it hits that API only.
"""

from __future__ import annotations

from typing import Any

from server.console.state import ConsoleState

KINDS = frozenset({"latency", "status", "rate_limit", "timeout", "reset", "malformed", "wrong_type"})
SPEC_FIELDS = frozenset({"api", "kind", "status", "delay", "retry_after", "times"})
MAX_DELAY = 60.0
MAX_TIMES = 1000
WRONG_TYPE_BODY = {"resourceType": "Binary", "id": "console-wrong-type", "contentType": "text/plain", "data": "AA=="}


class FaultSpecError(ValueError):
    """A fault the console refuses (400), the message naming the field."""


def _number(spec: dict[str, Any], name: str, default: float | None) -> float | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{name} must be a number")
    return float(value)


def emulator_fault(console: ConsoleState, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The emulator's control base URL and the /_control/faults body for a console fault."""
    unknown = sorted(set(spec) - SPEC_FIELDS)
    if unknown:
        raise FaultSpecError(f"Unknown field(s) {unknown}; expected {sorted(SPEC_FIELDS)}")
    api = spec.get("api")
    control = console.emulator_control(api) if isinstance(api, str) else None
    if control is None:
        raise FaultSpecError(f"api must be one of the emulated NHS APIs {console.api_keys()}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind must be one of {sorted(KINDS)}")
    times = spec.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or not (times == -1 or 1 <= times <= MAX_TIMES):
        raise FaultSpecError(f"times must be -1 (until cleared) or 1 to {MAX_TIMES}")
    delay = _number(spec, "delay", None)
    if delay is not None and not 0 <= delay <= MAX_DELAY:
        raise FaultSpecError(f"delay must be 0 to {MAX_DELAY:g} seconds")
    retry_after = spec.get("retry_after")
    if retry_after is not None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, str | int | float):
            raise FaultSpecError("retry_after must be a number of seconds, an HTTP date, or null")
        retry_after = str(retry_after)[:64]
    fault: dict[str, Any] = {"path_prefix": control.path_prefix, "times": times}
    if kind == "latency":
        if not delay:
            raise FaultSpecError("latency needs a delay above 0 seconds")
        fault["delay"] = delay
    elif kind in ("status", "rate_limit"):
        status = 429 if kind == "rate_limit" else spec.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultSpecError("status must be an HTTP error status, 400 to 599")
        fault["status"] = status
        if retry_after is not None:
            fault["retry_after"] = retry_after
        if delay:
            fault["delay"] = delay
    elif kind == "timeout":
        budget = max(console.settings.upstream_request_budget, console.settings.upstream_read_timeout)
        fault["delay"] = delay if delay else min(MAX_DELAY, budget + 1.0)
    elif kind == "reset":
        fault["reset"] = True
    elif kind == "malformed":
        fault["malformed"] = True
    else:  # wrong_type
        fault["status"] = 200
        fault["body"] = WRONG_TYPE_BODY
    return control.base_url, fault


def kind_of(raw: dict[str, Any], budget: float = float("inf")) -> str:
    """The console kind of an emulator fault (the inverse of emulator_fault); a delay past
    the façade's request `budget` is a timeout."""
    if raw.get("reset"):
        return "reset"
    if raw.get("malformed"):
        return "malformed"
    status = raw.get("status")
    if status == 200 and raw.get("body"):
        return "wrong_type"
    if status == 429:
        return "rate_limit"
    if status is not None:
        return "status"
    delay = raw.get("delay") or 0
    return "timeout" if delay >= budget else "latency"


def fault_view(console: ConsoleState, base: str, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The emulator's pending fault as the console shows it, once per API it applies to."""
    if raw.get("times") == 0:
        return []
    views = []
    for key in console.api_keys():
        control = console.emulator_control(key)
        if control is None or control.base_url != base:
            continue
        if not control.path_prefix.startswith(str(raw.get("path_prefix", "/"))):
            continue
        views.append(
            {
                "api": key,
                "kind": kind_of(raw, console.settings.upstream_request_budget),
                "status": raw.get("status"),
                "delay": raw.get("delay") or None,
                "retry_after": raw.get("retry_after"),
                "times": raw.get("times"),
            }
        )
    return views
