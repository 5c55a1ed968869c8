#!/usr/bin/env python3
"""Checks a demo report (the JSON scripts/demo.sh writes) against what leasehold promises.

    python3 scripts/demo/check_report.py REPORT.json [--kills] [--aborted]
    python3 scripts/demo/check_report.py REPORT.json --hotspot

Every check reads figures the demo measured; nothing is compared with a number fixed here
except the load the check itself asked for. Exits 1 with every broken expectation listed.

Governed (polling) run: no DatabaseBusy error, peak connections within budget + admin reserve,
leases in use never above the budget, no lease held at the end, every execution accounted for,
the pool's metrics read back from CloudWatch. Queued run: the same promises, and no waiter left
at the end either; requests really queued, and the queue's metrics were read back. Ungoverned
run: DatabaseBusy errors seen and more connections than the governed runs may ever use. The
FIFO ideal and every run's ratio to it are there. With --kills: containers were really killed
in both governed runs. With --aborted (a demo run with --abort-harness-after): both governed
harnesses were stopped part way and started again, and still no connection went above the
budget and no lease or waiter was left.

The queued run's goals (served per second near the physical limit, p99 at most a third of
polling's) are timing: the report shows them, and neither the demo's exit status nor this
check asserts them.

With --hotspot (a report of scripts/demo.sh --scenario hotspot): the four runs (steadyAlone,
ungoverned, sharedPool, shares) each account for every execution of each application; in the
governed runs no DatabaseBusy error, leases and connections never above the budget, no lease
and no waiter left; in the runs on the divided pool no application above its max, and the
division as the load asked; the per-application series were sampled and the hot application
really waited and borrowed beyond its reservation with shares; in the runs of both the hot
application's first child started no earlier than the load's hotStartMs (and after the steady
one's, when that is above 0); the goals (steady p99 with shares
within 1.5 x alone, budget use while both want more than their share >= 0.9) agree with the
figures they are computed from, and, as timing, are not asserted.
"""

import json
import sys

# The pinned contract of docs/report.md: extend, never rename.
TOP = ["budget", "maxConnections", "runs"]
RUN = [
    "executions", "served", "fallback", "failed", "databaseBusyErrors", "peakConnections",
    "leasesHeldAtEnd", "p50Ms", "p95Ms", "p99Ms", "servedPerSecond", "physicalLimitPerSecond",
    "peakConnectionsAboveBudget",
]
# Added with the queued run.
TOP_QUEUED = ["fifoIdeal"]
RUN_QUEUED = ["acquireMode", "leaseWait", "waitersAtEnd", "waiterRecordsAtEnd", "ratioToFifoIdeal"]
RUNS = ("queued", "governed", "ungoverned")


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    path, kills, aborted = argv[0], "--kills" in argv[1:], "--aborted" in argv[1:]
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    problems = []

    def expect(ok, text):
        print(("ok   " if ok else "FAIL ") + text)
        if not ok:
            problems.append(text)

    if "--hotspot" in argv[1:]:
        check_hotspot(report, expect)
        return finish(problems)
    expect(report.get("scenario", "queue") == "queue", f"a queue scenario report (scenario {report.get('scenario')})")

    for key in TOP + TOP_QUEUED:
        expect(key in report, f"report has {key}")
    runs = report.get("runs", {})
    for name in RUNS:
        for key in RUN + RUN_QUEUED:
            expect(key in runs.get(name, {}), f"{name} run has {key}")
    if problems:
        return finish(problems)

    budget, max_conn = report["budget"], report["maxConnections"]
    reserve = report["adminReserve"]
    asked = report["load"]["executions"]
    q, g, u = runs["queued"], runs["governed"], runs["ungoverned"]
    expect(1 <= budget <= max_conn - reserve,
           f"budget {budget} leaves the admin reserve {reserve} of max_connections {max_conn}")

    for name, r in (("queued", q), ("governed", g), ("ungoverned", u)):
        total = r["served"] + r["fallback"] + r["failed"]
        total_ok = total == r["executions"]
        expect(total_ok, f"{name}: served + fallback + failed = {total} = executions")
        summary = r["harnessSummary"]
        if "abortedHarnessExecutionArn" in r:
            # The stopped harness's children count too: those it started, then the full load.
            expect(r["executions"] > asked,
                   f"{name}: {r['executions']} executions measured, the {asked} of the second harness and those of the stopped one")
            expect(r["failedByError"].get("Aborted", 0) > 0,
                   f"{name}: the stopped harness's running children were aborted ({r['failedByError']})")
            continue
        expect(r["executions"] == asked, f"{name}: {r['executions']} executions measured of {asked} started")
        expect((summary.get("served"), summary.get("fallback"), summary.get("failed"))
               == (r["served"], r["fallback"], r["failed"]),
               f"{name}: the harness's own summary {summary} agrees with the histories")
        expect(r["p50Ms"] is not None and r["p50Ms"] <= r["p95Ms"] <= r["p99Ms"],
               f"{name}: p50 {r['p50Ms']} <= p95 {r['p95Ms']} <= p99 {r['p99Ms']} ms")
        expect(len(r["series"]["connections"]) > 0, f"{name}: connections were sampled")

    # What leasehold promises.
    expect(g["databaseBusyErrors"] == 0, f"governed: {g['databaseBusyErrors']} DatabaseBusy errors (want 0)")
    expect(g["connectionErrorsMaxConnections"] == 0,
           f"governed: the server refused {g['connectionErrorsMaxConnections']} connections at max_connections (want 0)")
    expect(1 <= g["peakConnections"] <= budget + reserve,
           f"governed: peak connections {g['peakConnections']} within budget {budget} + admin reserve {reserve}")
    expect(g["peakConnectionsAboveBudget"] == 0,
           f"governed: {g['peakConnectionsAboveBudget']} connections above the budget {budget} at the peak (want 0)")
    expect(1 <= g["peakLeasesInUse"] <= budget,
           f"governed: peak leases in use {g['peakLeasesInUse']} within the budget {budget}")
    expect(g["leasesHeldAtEnd"] == 0 and g["leaseRecordsAtEnd"] == 0,
           f"governed: {g['leasesHeldAtEnd']} leases in use and {g['leaseRecordsAtEnd']} lease records at the end (want 0)")
    expect(g["served"] > 0, f"governed: {g['served']} executions served")
    expect(g["acquireWait"] is not None and g["acquireWait"]["count"] >= g["served"],
           "governed: an acquire wait for every served execution")
    # The load is far above the budget: the pool must have refused, and the workflow retried.
    expect(g["connectionsExhaustedRetries"] > 0,
           f"governed: {g['connectionsExhaustedRetries']} ConnectionsExhausted retries (want > 0)")
    expect(len(g["series"]["remainingConnections"]) > 0,
           "governed: RemainingConnections read back from CloudWatch")
    expect(sum(v for _, v in g["series"]["noConnectionsLeftError"]) > 0,
           "governed: NoConnectionsLeftError read back from CloudWatch")

    # The queued run: the same promises, and the queue empty at the end.
    expect(q["acquireMode"] == "queued" and g["acquireMode"] == "polling" and u["acquireMode"] is None,
           f"modes: queued {q['acquireMode']}, governed {g['acquireMode']}, ungoverned {u['acquireMode']}")
    expect(q["databaseBusyErrors"] == 0, f"queued: {q['databaseBusyErrors']} DatabaseBusy errors (want 0)")
    expect(q["connectionErrorsMaxConnections"] == 0,
           f"queued: the server refused {q['connectionErrorsMaxConnections']} connections at max_connections (want 0)")
    expect(q["peakConnectionsAboveBudget"] == 0,
           f"queued: {q['peakConnectionsAboveBudget']} connections above the budget {budget} at the peak (want 0)")
    expect(1 <= q["peakLeasesInUse"] <= budget,
           f"queued: peak leases in use {q['peakLeasesInUse']} within the budget {budget}")
    left = (q["leasesHeldAtEnd"], q["leaseRecordsAtEnd"], q["waitersAtEnd"], q["waiterRecordsAtEnd"])
    expect(left == (0, 0, 0, 0),
           f"queued: {left[0]} leases in use, {left[1]} lease records, {left[2]} waiting, {left[3]} waiter records at the end (want 0)")
    expect(q["served"] > 0, f"queued: {q['served']} executions served")
    wait = q["leaseWait"] or {}
    expect(wait.get("state") == "AcquireQueued" and wait.get("granted", 0) >= q["served"],
           f"queued: a lease wait in AcquireQueued for every served execution ({wait.get('granted')} of {q['served']})")
    expect(sum(b["count"] for b in wait.get("histogram", [])) == wait.get("count"),
           "queued: the wait histogram counts every wait once")
    expect(q["peakWaiting"] > 0, f"queued: at most {q['peakWaiting']} requests waited at once (want > 0)")
    expect(len(q["series"]["waitingRequests"]) > 0, "queued: WaitingRequests read back from CloudWatch")
    expect(len(q["series"]["waitTime"]) > 0, "queued: WaitTime read back from CloudWatch")

    ideal = report["fifoIdeal"]
    expect(ideal["executions"] == asked and ideal["budget"] == budget and ideal["servedPerSecond"] > 0,
           f"FIFO ideal over the budget {budget} for the {asked} executions: {ideal['servedPerSecond']} per second")
    for name, r in (("queued", q), ("governed", g), ("ungoverned", u)):
        ratio = r["ratioToFifoIdeal"] or {}
        expect(ratio.get("servedPerSecond") is not None, f"{name}: a ratio to the FIFO ideal ({ratio})")

    # The problem leasehold prevents.
    expect(u["databaseBusyErrors"] > 0, f"ungoverned: {u['databaseBusyErrors']} DatabaseBusy errors (want > 0)")
    expect(u["peakConnections"] > budget + reserve,
           f"ungoverned: peak connections {u['peakConnections']} above what the governed run may use ({budget + reserve})")
    expect(u["acquireWait"] is None and u["peakLeasesInUse"] == 0, "ungoverned: no lease taken")

    if kills:
        for name, r in (("queued", q), ("governed", g)):
            killed = sum(f.get("kills", 0) for f in r["functions"].values())
            expect(killed > 0 and r["containerKills"] == killed,
                   f"kills: {killed} containers killed in the {name} run (want > 0)")
        expect(report["load"]["killProbability"] > 0, "kills: the report records the kill probability")
    if aborted:
        for name, r in (("queued", q), ("governed", g)):
            expect("abortedHarnessExecutionArn" in r,
                   f"aborted: the {name} harness was stopped part way and the load started again")
        expect(report["load"].get("abortHarnessAfterSeconds", 0) > 0,
               "aborted: the report records --abort-harness-after")
    return finish(problems)


HOTSPOT_RUNS = ("steadyAlone", "ungoverned", "sharedPool", "shares")
GOVERNED = ("steadyAlone", "sharedPool", "shares")
HOTSPOT_RUN = [
    "acquireMode", "divided", "executions", "served", "fallback", "failed", "databaseBusyErrors",
    "peakConnections", "peakConnectionsAboveBudget", "peakLeasesInUse", "peakLeaseRecords",
    "leasesHeldAtEnd", "leaseRecordsAtEnd", "waitersAtEnd", "waiterRecordsAtEnd", "contention",
    "applications", "series",
]
HOTSPOT_APP = [
    "executions", "served", "fallback", "failed", "databaseBusyErrors", "leaseWait", "peakInUse",
    "peakWaiting", "peakAboveMax", "reserved", "max", "latency", "firstStartMs",
]


def check_hotspot(report, expect):
    """The hotspot scenario's promises, read again from its JSON."""
    expect(report.get("scenario") == "hotspot", f"scenario is hotspot ({report.get('scenario')})")
    h = report.get("hotspot")
    expect(isinstance(h, dict), "report has hotspot")
    expect("runs" not in report, "no queue scenario runs in a hotspot report")
    if not isinstance(h, dict):
        return
    budget, max_conn = report["budget"], report["maxConnections"]
    runs = h.get("runs", {})
    for name in HOTSPOT_RUNS:
        for key in HOTSPOT_RUN:
            expect(key in runs.get(name, {}), f"{name} run has {key}")
    apps = {a["name"]: a for a in h["load"]["applications"]}
    expect(list(apps) == ["steady", "hot"], f"applications steady and hot ({list(apps)})")
    steady, hot = apps.get("steady", {}), apps.get("hot", {})
    expect(steady.get("reserved", 0) + hot.get("reserved", 0) <= budget,
           f"reservations {steady.get('reserved')} + {hot.get('reserved')} within the budget {budget}")
    expect(hot.get("concurrency", 0) >= 2 * budget,
           f"the hot application runs {hot.get('concurrency')} at once, several times the budget {budget}")
    for name in HOTSPOT_RUNS:
        for app in (("steady",) if name == "steadyAlone" else ("steady", "hot")):
            for key in HOTSPOT_APP:
                expect(key in runs.get(name, {}).get("applications", {}).get(app, {}),
                       f"{name}: {app} has {key}")
    if any(name not in runs for name in HOTSPOT_RUNS):
        return

    for name in HOTSPOT_RUNS:
        r = runs[name]
        for app, a in r["applications"].items():
            total = a["served"] + a["fallback"] + a["failed"]
            expect(total == a["executions"] == apps[app]["executions"],
                   f"{name}: {app} served + fallback + failed = {total} = executions {a['executions']} of {apps[app]['executions']}")
        expect(r["executions"] == sum(a["executions"] for a in r["applications"].values()),
               f"{name}: the run's executions are its applications'")
        expect(len(r["series"]["connections"]) > 0, f"{name}: connections were sampled")
    expect(set(runs["steadyAlone"]["applications"]) == {"steady"}, "steadyAlone runs the steady application only")

    # What leasehold promises, in every governed run.
    for name in GOVERNED:
        r = runs[name]
        expect(r["acquireMode"] == "queued", f"{name}: queued ({r['acquireMode']})")
        expect(r["databaseBusyErrors"] == 0, f"{name}: {r['databaseBusyErrors']} DatabaseBusy errors (want 0)")
        expect(1 <= r["peakLeasesInUse"] <= budget and r["peakLeaseRecords"] <= budget,
               f"{name}: peak leases {r['peakLeasesInUse']} (records {r['peakLeaseRecords']}) within the budget {budget}")
        expect(r["peakConnectionsAboveBudget"] == 0,
               f"{name}: {r['peakConnectionsAboveBudget']} connections above the budget at the peak (want 0)")
        left = (r["leasesHeldAtEnd"], r["leaseRecordsAtEnd"], r["waitersAtEnd"], r["waiterRecordsAtEnd"])
        expect(left == (0, 0, 0, 0),
               f"{name}: {left[0]} leases, {left[1]} lease records, {left[2]} waiting, {left[3]} waiter records at the end (want 0)")
        for app, a in r["applications"].items():
            series = r["series"]["applications"][app]
            expect(len(series["inUse"]) > 0 and a["peakInUse"] >= 1,
                   f"{name}: {app}'s leases were sampled (peak {a['peakInUse']})")
            wait = a["leaseWait"] or {}
            expect(wait.get("count", 0) >= a["served"] and wait.get("p99Ms") is not None,
                   f"{name}: a lease wait for every served {app} child (p99 {wait.get('p99Ms')} ms)")
    expect(runs["ungoverned"]["acquireMode"] is None, "ungoverned takes no lease")
    expect(runs["sharedPool"]["divided"] is False and runs["shares"]["divided"] is True
           and runs["steadyAlone"]["divided"] is True,
           "the pool is divided for steadyAlone and shares, one budget for sharedPool")

    # Shares: each application within its max, as the load asked.
    for name in ("steadyAlone", "shares"):
        for app, a in runs[name]["applications"].items():
            expect((a["reserved"], a["max"]) == (apps[app]["reserved"], apps[app]["max"]),
                   f"{name}: {app}'s share in force is reserved {a['reserved']}, max {a['max']}")
            expect(a["peakInUse"] <= a["max"] and a["peakAboveMax"] == 0,
                   f"{name}: {app} peak {a['peakInUse']} within its max {a['max']}")
    shares = runs["shares"]
    hot_run = shares["applications"]["hot"]
    expect(hot_run["peakWaiting"] > 0, f"shares: the hot application queued ({hot_run['peakWaiting']} at most)")
    expect(hot_run["peakInUse"] > hot["reserved"],
           f"shares: the hot application borrowed beyond its reservation {hot['reserved']} (peak {hot_run['peakInUse']})")

    # The hot application started as late as the load says, after the steady one, in every run
    # of both (the warm-up aside).
    hot_start = h["load"].get("hotStartMs")
    expect(isinstance(hot_start, int) and hot_start >= 0, f"the load has hotStartMs ({hot_start})")
    for name in ("ungoverned", "sharedPool", "shares") if isinstance(hot_start, int) else ():
        first = {app: a.get("firstStartMs") for app, a in runs[name]["applications"].items()}
        if None in first.values():
            expect(False, f"{name}: every application's first start is known ({first})")
            continue
        expect(first["hot"] >= hot_start,
               f"{name}: the hot application's first child started {first['hot']} ms in, not before {hot_start}")
        if hot_start > 0:
            expect(first["steady"] < first["hot"],
                   f"{name}: the steady application started first ({first['steady']} ms, hot {first['hot']} ms)")

    # The problem the runs compare with.
    u = runs["ungoverned"]
    expect(u["databaseBusyErrors"] > 0, f"ungoverned: {u['databaseBusyErrors']} DatabaseBusy errors (want > 0)")
    expect(u["peakConnections"] > budget, f"ungoverned: peak connections {u['peakConnections']} above the budget {budget}")
    expect(u["peakConnections"] <= max_conn, f"ungoverned: peak connections within max_connections {max_conn}")

    # The goals agree with the figures they come from (timing: not asserted).
    checks = h["checks"]
    alone = runs["steadyAlone"]["applications"]["steady"]["leaseWait"]["p99Ms"]
    with_shares = shares["applications"]["steady"]["leaseWait"]["p99Ms"]
    expect(checks["sharesSteadyP99WithinOneAndAHalfOfAlone"] == (with_shares <= 1.5 * alone),
           f"goal as computed: steady p99 {with_shares} ms with shares against {alone} ms alone")
    window = shares["contention"] or {}
    use = window.get("budgetUse")
    expect(checks["sharesBudgetUseAtLeast90Percent"] == (use is not None and use >= 0.9),
           f"goal as computed: budget use {use} over {window.get('samples')} samples of contention")
    expect(window.get("samples", 0) <= window.get("ofSamples", 0), "contention samples are a part of all samples")
    promises = ("governedNoDatabaseBusy", "budgetNeverExceeded", "noApplicationAboveMax", "noLeasesOrWaitersLeft")
    expect(all(checks[k] for k in promises), f"every promise holds in the report's own checks ({ {k: checks[k] for k in promises} })")


def finish(problems):
    if problems:
        print(f"check_report: {len(problems)} expectation(s) broken", file=sys.stderr)
        return 1
    print("check_report: all expectations hold")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
