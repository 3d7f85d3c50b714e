"""``mlconnector`` under cProfile on process CPU time, the profile taken from SIGUSR1 to exit.

``python benchmarks/_profiled_worker.py OUT.prof worker …``: the benchmark (``scale.py
postgres … --profile OUT.prof``) signals it when the measured window opens, so start-up
(imports, the first schedule pass) is outside the profile.
"""

from __future__ import annotations

import atexit
import cProfile
import signal
import sys
import time

out = sys.argv.pop(1)
profiler = cProfile.Profile(time.process_time)


def _start(*_: object) -> None:
    profiler.enable()


def _dump() -> None:
    profiler.disable()
    profiler.dump_stats(out)


signal.signal(signal.SIGUSR1, _start)
atexit.register(_dump)

from mlconnector.cli import main  # noqa: E402

main()
