#!/usr/bin/env python3
"""Medians of bench/core/run.sh's results.jsonl as a Markdown table.

    python3 bench/core/summary.py OUT/results.jsonl

One row per scenario: the median of each figure over its rounds, and the
range of the 1-minute load average seen at the start and end of the rounds.
"""
import json
import statistics
import sys
from collections import OrderedDict

rows = OrderedDict()
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        d = json.loads(line)
        rows.setdefault(d["scenario"], []).append(d)


def med(rs, k, fmt="{:.1f}"):
    v = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
    return fmt.format(statistics.median(v)) if v else ""


def load(rs):
    v = [r[k] for r in rs for k in ("load0", "load1") if k in r]
    return "{:.1f}-{:.1f}".format(min(v), max(v)) if v else ""


print("| scenario | rounds | rate/s | p50 ms | p99 ms | non-2xx | disk B/req | log B/req "
      "| state changes | disk B/change | checkpoints | jobs/commit | core CPU s | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for s, rs in rows.items():
    if s in ("resync", "core"):
        continue
    for r in rs:
        if r.get("writer_groups"):
            r["jobs_per_group"] = r["writer_jobs"] / r["writer_groups"]
    print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        s, len(rs), med(rs, "rate", "{:.0f}"), med(rs, "p50_ms", "{:.2f}"),
        med(rs, "p99_ms", "{:.2f}"), med(rs, "non2xx", "{:.0f}"),
        med(rs, "disk_per_req", "{:.0f}"), med(rs, "log_per_req", "{:.0f}"),
        med(rs, "versions", "{:.0f}"), med(rs, "disk_per_change", "{:.0f}"),
        med(rs, "checkpoints", "{:.0f}"), med(rs, "jobs_per_group", "{:.1f}"),
        med(rs, "core_cpu_s", "{:.1f}"), load(rs)))
    if s == "mixed":
        print("| mixed: the 4 viewers | {} | {} | | {} | | | | | | | | | |".format(
            len(rs), med(rs, "viewers_rate", "{:.0f}"), med(rs, "viewers_p99_ms", "{:.1f}")))
if "resync" in rows:
    rs = rows["resync"]
    print("\nresync: median {} s over {} rounds (load {}); CPU: CLI {} s, redis-server {} s; "
          "CLI peak RSS {} KiB".format(
              med(rs, "seconds", "{:.2f}"), len(rs), load(rs), med(rs, "cli_cpu_s", "{:.2f}"),
              med(rs, "redis_cpu_s", "{:.2f}"), med(rs, "cli_rss_kb", "{:.0f}")))
if "core" in rows:
    c = rows["core"][-1]
    print("core: started in {} s; RSS {} MiB (peak {} MiB); WAL {} MiB; registry {} MiB".format(
        c["start_s"], c["rss_kb"] // 1024, c["hwm_kb"] // 1024, c["wal_bytes"] >> 20,
        c["db_bytes"] >> 20))
