"""Metrics labels stay bounded whatever the path, the /metrics access rule, the JSON log
formatter, and multi-process aggregation (PROMETHEUS_MULTIPROC_DIR) across processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.middleware import request_labels
from server.log_setup import JSONFormatter
from server.metrics import status_outcome
from server.metrics_endpoint import metrics_refusal

SERVED = frozenset({"Patient", "Observation", "MedicationRequest"})
INTERACTIONS = {
    "read",
    "vread",
    "search-type",
    "operation",
    "batch",
    "create",
    "update",
    "patch",
    "delete",
    "system",
    "capabilities",
    "health",
    "metrics",
    "discovery",
    "history",
}


@given(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), st.text())
def test_labels_come_from_bounded_sets_whatever_the_path(method: str, path: str) -> None:
    rtype, interaction = request_labels(method, "/" + path, SERVED)
    assert rtype in SERVED | {"other", "system", "pas"}
    assert interaction in INTERACTIONS


@pytest.mark.parametrize(
    ("method", "path", "labels"),
    [
        ("GET", "/Patient/9000000009", ("Patient", "read")),
        ("GET", "/Patient", ("Patient", "search-type")),
        ("POST", "/Patient/_search", ("Patient", "search-type")),
        ("GET", "/Patient/9000000009/Observation", ("Observation", "search-type")),
        ("GET", "/Patient/9000000009/$everything", ("Patient", "operation")),
        ("GET", "/Patient/9000000009/_history/1", ("Patient", "vread")),
        ("GET", "/Smith/9000000009", ("other", "read")),
        ("POST", "/", ("system", "batch")),
        ("GET", "/metadata", ("system", "capabilities")),
        ("GET", "/_health/ready", ("system", "health")),
        ("GET", "/metrics", ("system", "metrics")),
        ("GET", "/pas/v1/patients/H820", ("pas", "read")),
    ],
)
def test_request_labels(method: str, path: str, labels: tuple[str, str]) -> None:
    assert request_labels(method, path, SERVED) == labels


def test_nhs_status_outcomes() -> None:
    assert [status_outcome(s) for s in (200, 304, 404, 429, 500, 504)] == ["ok", "ok", "4xx", "429", "5xx", "5xx"]


def test_metrics_access_is_a_secret_or_the_sandbox() -> None:
    assert metrics_refusal("s3cret", "Bearer s3cret", sandbox=False) is None
    assert metrics_refusal("s3cret", "bearer s3cret", sandbox=True) is None
    for presented in (None, "", "Bearer", "Bearer wrong", "s3cret", "Basic s3cret"):
        refusal = metrics_refusal("s3cret", presented, sandbox=True)
        assert refusal is not None and refusal[0] == 401  # a token set is needed even in the sandbox
    assert metrics_refusal(None, None, sandbox=True) is None
    refusal = metrics_refusal(None, "Bearer anything", sandbox=False)
    assert refusal is not None and refusal[0] == 403 and "FACADE_METRICS_TOKEN" in refusal[1]


def test_json_log_lines_carry_the_fields_and_no_traceback_text() -> None:
    record = logging.LogRecord("facade.access", logging.INFO, __file__, 1, "request %s", ("done",), None)
    record.fields = {"request_id": "r-1", "status": 200, "nhs_calls": 2}
    line = orjson.loads(JSONFormatter().format(record))
    assert line["message"] == "request done" and line["level"] == "INFO" and line["logger"] == "facade.access"
    assert (line["request_id"], line["status"], line["nhs_calls"]) == ("r-1", 200, 2)
    try:
        raise ValueError("Patient 9000000009 Jane Smith")
    except ValueError:
        failed = logging.LogRecord("facade", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    rendered = JSONFormatter().format(failed)
    assert orjson.loads(rendered)["exception"] == "ValueError" and "9000000009" not in rendered


WORKER = """
import sys
from server import metrics
metrics.nhs_call("PDS", "ok")
metrics.observe_request("Patient", "read", 200, 0.01)
if sys.argv[1] == "scrape":
    sys.stdout.write(metrics.exposition()[0].decode())
"""


def test_multiprocess_mode_adds_up_every_workers_counts(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    for role in ("count", "count", "scrape"):  # two workers, then a third answers the scrape
        done = subprocess.run(
            [sys.executable, "-c", WORKER, role], env=env, cwd=root, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    assert 'facade_nhs_calls_total{api="PDS",outcome="ok"} 3.0' in done.stdout
    assert 'facade_requests_total{interaction="read",status="200",type="Patient"} 3.0' in done.stdout
