#!/usr/bin/python3
"""`resnetd bench --tune`: every workers x threads (fitting the cores) x batch
1,2,4,8 is measured, and the two closing lines name the measured configuration
with the most img/s and the one with the lowest p50 latency at batch 1; then
one "tuned_convs" line per pick gives the conv algorithm timed fastest per
node at that pick's batch and threads."""
import json
import os
import sys

from quant_common import run


def main():
    resnetd, model = sys.argv[1], sys.argv[2]
    p = run([resnetd, "bench", "--model", model, "--tune", "--seconds", "0.3",
             "--no-save"])  # the bundled model directory stays as committed
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    rows = [l for l in lines if "tuned" not in l and "tuned_convs" not in l]
    convs = {l["tuned_convs"]: l for l in lines if "tuned_convs" in l}
    tuned = {l["tuned"]: l for l in lines if "tuned" in l}
    cores = os.cpu_count()
    combos = {(r["workers"], r["threads"], r["batch"]) for r in rows}
    want = {(w, t, b) for w in range(1, cores + 1) for t in range(1, cores + 1)
            if w * t <= cores for b in (1, 2, 4, 8)}
    assert combos == want, (sorted(combos), sorted(want))
    key = ("batch", "workers", "threads")
    assert set(tuned) == {"throughput", "latency"}, tuned
    # The printed figures are rounded to 2 decimals, so several rows may tie
    # with the winner: the pick must be one of the rows with the best figure.
    top = max(r["images_per_second"] for r in rows)
    best = [tuple(r[k] for k in key) for r in rows if r["images_per_second"] == top]
    assert tuple(tuned["throughput"][k] for k in key) in best, (tuned, best)
    low = min(r["latency_ms_p50"] for r in rows if r["batch"] == 1)
    fast = [tuple(r[k] for k in key) for r in rows
            if r["batch"] == 1 and r["latency_ms_p50"] == low]
    assert tuple(tuned["latency"][k] for k in key) in fast, (tuned, fast)
    # the throughput pick is timed (and printed) only when its batch or threads
    # differ from the latency pick's; otherwise it shares that measurement
    same = all(tuned["throughput"][k] == tuned["latency"][k] for k in ("batch", "threads"))
    assert set(convs) == ({"latency"} if same else {"throughput", "latency"}), (tuned, convs)
    for goal, c in convs.items():
        assert (c["batch"], c["threads"]) == (tuned[goal]["batch"], tuned[goal]["threads"]), c
        assert all(v in ("direct", "channels_last", "winograd")
                   for v in c["conv_algorithms"].values()), c
        assert sum(c["nodes"].values()) == len(c["conv_algorithms"]), c
        assert 0 <= c["chosen_ms"] <= c["default_ms"] + 1e-9, c
    print("ok:", tuned["throughput"], tuned["latency"])


if __name__ == "__main__":
    main()
