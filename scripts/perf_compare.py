#!/usr/bin/env python3
"""Compares a scripts/perf.sh run to a baseline run by ratio to ceilings.

Absolute figures move up to 2x between runs of the same VM, so every
figure is first turned into a ratio against a ceiling of its own run
(broker / sink, consume / sendfile, e2e p99 / the same phase's produce
p99, acks=1 p99 / loopback p99, broker p99 / sink p99), and only the
ratios are compared. A throughput ratio regresses when it falls more than
THROUGHPUT_BAND below the baseline's; a latency ratio when it grows more
than LATENCY_FACTOR times. The bands come from two quiet runs of the same
commit family on 2026-12-05 (README "Performance"): throughput ratios
moved 4% (0.99 / 0.95), latency ratios up to 4.6x (produce p99 against
the sink's: 0.82 / 3.8), so only a larger move is a signal here.

    python3 scripts/perf_compare.py perf/baseline target/perf

Prints one line per ratio (baseline, new, verdict) and exits 1 if any
regressed, 2 on unreadable input. Standard library only.
"""

import csv
import sys
from pathlib import Path

THROUGHPUT_BAND = 0.15
LATENCY_FACTOR = 5.0


def rows(run, name):
    path = Path(run) / name
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def row(run, name, mode, rate):
    for r in rows(run, name):
        if r["mode"] == mode and r["target_msgs_per_sec"] == rate:
            return r
    return None


def ceiling(run, name, kind):
    best = 0.0
    for r in rows(run, name):
        if r["ceiling"] == kind:
            best = max(best, float(r["mb_per_sec"]))
    return best


def ratios(run):
    """name -> (kind, value): kind 'throughput' (higher is better) or
    'latency' (lower is better); figures a run lacks are left out."""
    out = {}
    produce = {r["target_msgs_per_sec"]: r for r in rows(run, "produce.csv")}
    sink = {r["target_msgs_per_sec"]: r for r in rows(run, "ceiling-sink.csv")}
    top = max((rate for rate in produce if rate in sink), key=float, default=None)
    if top is not None and float(sink[top]["achieved_mb_per_sec"]) > 0:
        out[f"produce broker / sink MB/s at {top}"] = (
            "throughput",
            float(produce[top]["achieved_mb_per_sec"]) / float(sink[top]["achieved_mb_per_sec"]),
        )
    for rate in ("1000", "10000"):
        if rate in produce and rate in sink and float(sink[rate]["p99_us"]) > 0:
            out[f"produce p99 broker / sink at {rate}"] = (
                "latency",
                float(produce[rate]["p99_us"]) / float(sink[rate]["p99_us"]),
            )
    sendfile = ceiling(run, "ceiling-sendfile.csv", "sendfile")
    consume = row(run, "consume.csv", "consume", "max")
    if consume and sendfile > 0:
        out["consume / sendfile"] = ("throughput", float(consume["achieved_mb_per_sec"]) / sendfile)
    e2e = {(r["mode"], r["target_msgs_per_sec"]): r for r in rows(run, "e2e.csv")}
    for (mode, rate), r in sorted(e2e.items()):
        base = e2e.get(("e2e-produce", rate))
        if mode == "e2e" and base and float(base["p99_us"]) > 0 and rate != "1000000":
            out[f"e2e p99 / produce p99 at {rate}"] = (
                "latency",
                float(r["p99_us"]) / float(base["p99_us"]),
            )
    floor = row(run, "ping-floor.csv", "ping-floor", "max")
    if floor and float(floor["p99_us"]) > 0 and (Path(run) / "produce-acks1.csv").exists():
        for r in rows(run, "produce-acks1.csv"):
            out[f"acks=1 p99 / loopback p99 at {r['target_msgs_per_sec']}"] = (
                "latency",
                float(r["p99_us"]) / float(floor["p99_us"]),
            )
    return out


def verdict(kind, base, new):
    if kind == "throughput":
        return "REGRESSED" if new < base - THROUGHPUT_BAND else "ok"
    return "REGRESSED" if new > base * LATENCY_FACTOR else "ok"


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: perf_compare.py BASELINE_DIR NEW_DIR", file=sys.stderr)
        return 2
    try:
        base, new = ratios(argv[1]), ratios(argv[2])
    except (OSError, KeyError, ValueError) as error:
        print(f"perf_compare.py: {error}", file=sys.stderr)
        return 2
    regressed = 0
    for name, (kind, base_value) in base.items():
        if name not in new:
            print(f"{name:48} baseline {base_value:8.3f}  new      -   (not in the new run)")
            continue
        new_value = new[name][1]
        mark = verdict(kind, base_value, new_value)
        regressed += mark != "ok"
        print(f"{name:48} baseline {base_value:8.3f}  new {new_value:8.3f}  {mark}")
    print(f"{regressed} regressed (throughput band -{THROUGHPUT_BAND}, latency band x{LATENCY_FACTOR})")
    return 1 if regressed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
