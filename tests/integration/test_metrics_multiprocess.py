"""Multi-process metrics: worker processes started with ``PROMETHEUS_MULTIPROC_DIR`` write their
counters there, and a ``/metrics`` of the same host sums every process's files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlconnector.web.metrics import MULTIPROC_ENV, Metrics

WORKER = """
import sys
from mlconnector.web.metrics import Metrics, counts_to_files
assert counts_to_files(), "the variable was set before the import: counters go to files"
metrics = Metrics()
for _ in range(int(sys.argv[1])):
    metrics.run_finished("acme", "orders", sys.argv[2], 1.5)
"""


def run_worker(directory: Path, runs: int, outcome: str) -> None:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    subprocess.run(
        [sys.executable, "-c", WORKER, str(runs), outcome], env=env, check=True, timeout=60
    )


def test_counters_of_several_processes_are_summed(tmp_path: Path) -> None:
    run_worker(tmp_path, 3, "ok")
    run_worker(tmp_path, 2, "ok")
    run_worker(tmp_path, 1, "partial")
    # this process reads the directory (its own counters are not in it: it imported first)
    text = generate_latest(Metrics(env={MULTIPROC_ENV: str(tmp_path)}).events()).decode()
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = (("connection", "acme"), ("flow", "orders"))
    assert values[("mlconnector_runs_total", (*labels, ("outcome", "ok")))] == 5
    assert values[("mlconnector_runs_total", (*labels, ("outcome", "partial")))] == 1
    assert values[("mlconnector_run_duration_seconds_count", labels)] == 6
    assert values[("mlconnector_run_duration_seconds_sum", labels)] == 9.0


def test_without_the_directory_each_metrics_counts_in_memory() -> None:
    first, second = Metrics(env={}), Metrics(env={})
    first.run_finished("acme", "orders", "ok", 1.0)
    text = generate_latest(second.events()).decode()
    assert 'mlconnector_runs_total{connection="acme"' not in text
    assert 'mlconnector_runs_total{connection="acme",flow="orders",outcome="ok"} 1.0' in (
        generate_latest(first.events()).decode()
    )
