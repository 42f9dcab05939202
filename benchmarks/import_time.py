"""Cold-start cost: import time of function_app.py against azure.functions alone.

Each sample is a fresh interpreter (python -X importtime is not used: it slows the
imports it measures). Prints the medians and their ratio; the target is at most 1.3.

    .venv/bin/python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SNIPPET = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def sample(module: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONDONTWRITEBYTECODE"}}
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--target", type=float, default=1.3)
    args = parser.parse_args()
    # Warm the bytecode cache once so both sides are measured from .pyc files.
    sample("function_app")
    base, app = [], []
    for _ in range(args.runs):  # interleaved so drift in machine load hits both alike
        base.append(sample("azure.functions"))
        app.append(sample("function_app"))
    base_median, app_median = statistics.median(base), statistics.median(app)
    ratio = app_median / base_median
    print(f"azure.functions alone : median {base_median * 1000:.1f} ms over {args.runs} fresh processes")
    print(f"function_app          : median {app_median * 1000:.1f} ms over {args.runs} fresh processes")
    print(f"ratio                 : {ratio:.2f} (target <= {args.target})")
    return 0 if ratio <= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
