#!/usr/bin/env bash
# Where distribution pays off: a 5,000-symbol synthetic scan, embedded (one process, one
# worker actor per core) vs a coordinator (`technic scan --redis URL --workers 0`) with 1, 2
# and 3 `technic worker` processes (one actor per core each), at 0 ms and at 20 ms of injected
# data-source latency per symbol; then the cost of a worker killed with `kill -9` mid-scan
# (visibility timeout + re-delivery). No cache anywhere, so every run loads and computes.
#
#   scripts/bench_cluster.sh              # RUNS=3 repetitions at 0 ms (20 ms runs once:
#                                         # it is sleep-bound and barely varies)
#
# Needs redis-server (scripts/test.sh installs it). Every process runs on this machine, so
# with 0 ms latency more processes only share the same cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
BIN=./target/release/technic RUNS=${RUNS:-3} python3 - <<'PY'
import json, os, signal, socket, statistics, subprocess, tempfile, time

BIN, RUNS, N = os.environ["BIN"], int(os.environ["RUNS"]), "5000"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

port = free_port()
tmp = tempfile.mkdtemp()
redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                          "--dir", tmp], stdout=subprocess.DEVNULL)
URL = f"redis://127.0.0.1:{port}"
BASE = {"PATH": os.environ["PATH"], "TECHNIC_LOG__LEVEL": "error"}

def env(latency):
    return {**BASE, "TECHNIC_DATA__SYNTHETIC__LATENCY_MS": str(latency)}

def nodes():
    out = subprocess.run([BIN, "cluster", "nodes", "--redis", URL, "--json"], env=BASE,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)

def scan(args, latency):
    t = time.perf_counter()
    out = subprocess.run([BIN, "scan", "--universe-size", N, "--format", "json", "--quiet",
                          "--cache", "none", *args], env=env(latency), capture_output=True,
                         text=True, check=True).stdout
    wall = time.perf_counter() - t
    report = json.loads(out)
    assert report["universe_size"] == int(N) and report["status"] == "completed"
    return wall, report

def start_workers(n, latency, tag):
    procs = [subprocess.Popen([BIN, "worker", "--redis", URL, "--cache", "none",
                               "--node-id", f"{tag}-{i}"], env=env(latency),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(n)]
    deadline = time.time() + 30
    while sum(1 for x in nodes() if x["state"] == "up" and x["id"].startswith(tag)) < n:
        assert time.time() < deadline, "workers did not come up"
        time.sleep(0.1)
    return procs

def stop(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)

time.sleep(0.3)
print(f"{'latency':>8} {'setup':<22} {'median s':>9} {'vs embedded':>12}")
for latency in (0, 20):
    runs = RUNS if latency == 0 else 1
    base = statistics.median(scan([], latency)[0] for _ in range(runs))
    print(f"{latency:>6}ms {'embedded':<22} {base:>9.2f} {1.0:>11.2f}x")
    for n in (1, 2, 3):
        procs = start_workers(n, latency, f"b{latency}x{n}")
        t = statistics.median(scan(["--redis", URL, "--workers", "0"], latency)[0]
                              for _ in range(runs))
        stop(procs)
        print(f"{latency:>6}ms {f'{n} worker process(es)':<22} {t:>9.2f} {t / base:>11.2f}x")

# Recovery: 3 workers at 20 ms; one is killed 3 s into the scan.
procs = start_workers(3, 20, "rec")
clean, _ = scan(["--redis", URL, "--workers", "0"], 20)
coord = subprocess.Popen([BIN, "scan", "--universe-size", N, "--format", "json", "--quiet",
                          "--cache", "none", "--redis", URL, "--workers", "0"], env=env(20),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
t = time.perf_counter()
time.sleep(3)
procs[1].kill()
out, _ = coord.communicate(timeout=300)
killed = time.perf_counter() - t
report = json.loads(out)
assert report["status"] == "completed" and not report["failures"]
print(f"recovery: 3 workers at 20 ms, clean {clean:.2f}s; one killed at 3 s: {killed:.2f}s "
      f"(+{killed - clean:.2f}s; a 2-worker scan does the rest; nodes {report['nodes']})")
stop([procs[0], procs[2]])
redis.terminate()
PY
