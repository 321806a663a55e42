#!/usr/bin/env bash
# Scale past this machine: one scan of 100,000 synthetic symbols over 16 `technic worker`
# processes (one worker actor each, 20 ms injected latency per symbol, no cache), driven by a
# coordinator-only `technic serve` through one redis-server. Measures what decides where a
# bigger cluster saturates:
#   - the coordinator's CPU seconds (utime + stime of the serve process, from /proc);
#   - Redis commands and network bytes per shard (INFO commandstats / stats deltas);
#   - Redis CPU seconds (INFO cpu deltas).
#
#   scripts/bench_scale.sh                  # SYMBOLS=100000 WORKERS=16 LATENCY_MS=20
#
# Needs redis-server (scripts/test.sh installs it). Takes about SYMBOLS x LATENCY / WORKERS
# (2 minutes by default) plus start-up. The workers sleep on the injected latency, so 16 of
# them fit on 2 cores; the figures per shard do not depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
BIN=./target/release/technic SYMBOLS=${SYMBOLS:-100000} WORKERS=${WORKERS:-16} \
  LATENCY_MS=${LATENCY_MS:-20} python3 - <<'PY'
import json, os, signal, socket, subprocess, tempfile, time, urllib.request

BIN = os.environ["BIN"]
SYMBOLS, WORKERS, LATENCY = (int(os.environ[k]) for k in ("SYMBOLS", "WORKERS", "LATENCY_MS"))
TICK = os.sysconf("SC_CLK_TCK")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

rport, hport = free_port(), free_port()
tmp = tempfile.mkdtemp()
redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                          "--dir", tmp], stdout=subprocess.DEVNULL)
URL = f"redis://127.0.0.1:{rport}"
ENV = {"PATH": os.environ["PATH"], "TECHNIC_LOG__LEVEL": "error",
       "TECHNIC_DATA__SYNTHETIC__SYMBOLS": str(SYMBOLS),
       "TECHNIC_DATA__SYNTHETIC__LATENCY_MS": str(LATENCY),
       "TECHNIC_SCAN__MAX_UNIVERSE_SIZE": str(SYMBOLS)}

def info(section):
    out = subprocess.run(["redis-cli", "-p", str(rport), "INFO", section], capture_output=True,
                         text=True, check=True).stdout
    return dict(l.split(":", 1) for l in out.splitlines() if ":" in l)

def commands():
    total = 0
    for k, v in info("commandstats").items():
        if k.startswith("cmdstat_"):
            total += int(dict(x.split("=") for x in v.split(","))["calls"])
    return total

def snapshot():
    st, cpu = info("stats"), info("cpu")
    return {"cmds": commands(),
            "in": int(st["total_net_input_bytes"]), "out": int(st["total_net_output_bytes"]),
            "cpu": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])}

def cpu_secs(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK

def http(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{hport}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())

time.sleep(0.3)
workers = [subprocess.Popen([BIN, "worker", "--redis", URL, "--workers", "1", "--cache", "none",
                             "--node-id", f"w{i}"], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL) for i in range(WORKERS)]
serve = subprocess.Popen([BIN, "serve", "--redis", URL, "--workers", "0", "--cache", "none",
                          "--bind", f"127.0.0.1:{hport}"], env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
deadline = time.time() + 60
while True:
    try:
        if sum(1 for n in http("GET", "/api/v1/cluster/nodes")["nodes"] if n["state"] == "up") >= WORKERS:
            break
    except Exception:
        pass
    assert time.time() < deadline, "the cluster did not come up"
    time.sleep(0.2)

before, cpu0, t0 = snapshot(), cpu_secs(serve.pid), time.perf_counter()
sid = http("POST", "/api/v1/scans", {"universe_size": SYMBOLS})["id"]
while True:
    s = http("GET", f"/api/v1/scans/{sid}")
    if s["stage"] in ("done", "failed", "cancelled"):
        break
    time.sleep(0.5)
wall = time.perf_counter() - t0
after, cpu1 = snapshot(), cpu_secs(serve.pid)
assert s["stage"] == "done" and s["scanned"] + len(s["failures"]) == SYMBOLS, s
# The coordinator's sizing: about four shards per worker, at most cluster.shard_size (64).
size = min(64, -(-SYMBOLS // (WORKERS * 4)))
shards = -(-SYMBOLS // size)
d = {k: after[k] - before[k] for k in after}
coord = cpu1 - cpu0
print(f"{SYMBOLS} symbols, {WORKERS} workers x 1 actor, {LATENCY} ms/symbol, shards of {size}: "
      f"{shards} shards, scan {wall:.1f} s ({SYMBOLS / wall:.0f} symbols/s)")
print(f"coordinator (technic serve) CPU: {coord:.2f} s = {coord / shards * 1e6:.0f} us/shard, "
      f"{coord / SYMBOLS * 1e6:.1f} us/symbol")
print(f"redis: {d['cmds']} commands = {d['cmds'] / shards:.1f}/shard; "
      f"in {d['in'] / 1e6:.1f} MB = {d['in'] / shards / 1e3:.1f} KB/shard, "
      f"out {d['out'] / 1e6:.1f} MB = {d['out'] / shards / 1e3:.1f} KB/shard; "
      f"CPU {d['cpu']:.2f} s = {d['cpu'] / shards * 1e6:.0f} us/shard "
      f"({d['cpu'] / wall * 100:.1f} % of one core)")
for p in [serve, *workers]:
    p.send_signal(signal.SIGTERM)
for p in [serve, *workers]:
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
redis.terminate()
PY
