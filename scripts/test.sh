#!/usr/bin/env bash
# The test command (README): everything the tests need, then every test.
# Tests start what they need themselves (technic and redis-server processes, temp files);
# this script installs what a fresh machine may lack.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo; then
  echo "cargo is required: install Rust from your package manager or rustup" >&2
  exit 1
fi

# The cache tests start their own redis-server processes (standalone and a 3-master
# cluster); Debian's redis-server package brings redis-cli (redis-tools) with it.
if ! need redis-server || ! need redis-cli; then
  echo "installing redis-server and redis-cli (apt-get)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The package starts a system redis-server on 6379; the tests do not use it.
fi

# tests/ops_files.rs runs promtool on cluster/alerts.yml and its unit tests; Debian's
# prometheus package ships /usr/bin/promtool (a 19 MB download; ~22 s here including
# apt-get update).
if ! need promtool; then
  echo "installing promtool (apt-get: prometheus)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Where services start, the package also starts a Prometheus server on :9090; the
  # tests use only promtool.
fi

# The dashboard tests (tests/web.rs, tests/web_ops.rs) drive a real headless Chromium through chromedriver.
if ! need chromedriver || ! { need chromium || need chromium-browser; }; then
  echo "installing chromium and chromium-driver (apt-get)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
fi

# The Python test tools, pinned, in a git-ignored venv that the tests find through
# PY_TEST_TOOLS; reinstalled only when the pins change. tests/openapi.rs validates the
# served OpenAPI document (openapi-spec-validator) and fuzzes the live API against it
# (schemathesis); tests/deploy_files.rs checks the Kubernetes manifests against the API
# schema (kubernetes-validate).
py_tools="target/py"
py_pins="openapi-spec-validator==0.9.0 schemathesis==4.32.5 kubernetes-validate==1.34.1"
if [ "$(cat "$py_tools/.pins" 2>/dev/null)" != "$py_pins" ]; then
  if ! need python3 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "installing python3 and python3-venv (apt-get)" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv >/dev/null
  fi
  echo "installing $py_pins into $py_tools (pip)" >&2
  rm -rf "$py_tools"
  python3 -m venv "$py_tools"
  "$py_tools/bin/pip" install -q --disable-pip-version-check $py_pins
  echo "$py_pins" >"$py_tools/.pins"
fi
# Not a TECHNIC_* name: that prefix belongs to the settings, and technic refuses an unknown
# one (every test that runs the binary with this environment would exit 2).
export PY_TEST_TOOLS="$PWD/$py_tools/bin"

# --- multi-host rig (tests/rig.rs) -------------------------------------------------------
# The rig puts each host in a network namespace (`ip`, from iproute2; root needed, otherwise
# it falls back to loopback) and runs Prometheus (the `prometheus` package above) and
# Alertmanager (Debian's prometheus-alertmanager: /usr/bin/prometheus-alertmanager).
if ! need ip || ! { need prometheus-alertmanager || need alertmanager; } || ! need prometheus; then
  echo "installing iproute2, prometheus and prometheus-alertmanager (apt-get)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    iproute2 prometheus prometheus-alertmanager >/dev/null
  # Where services start, the packages also start their own servers; the rig runs its own.
fi
# --- end of multi-host rig -------------------------------------------------------------------

# --- coverage ----------------------------------------------------------------------------
# The whole suite runs once, instrumented (cargo llvm-cov: Rust's source-based coverage;
# test processes pass LLVM_PROFILE_FILE on to the technic processes they start, and end
# them with SIGTERM so they write their counts), then the line coverage of src/ is
# reported and must be at least COVERAGE_MIN_LINES (80). llvm-cov and llvm-profdata come
# from Debian's llvm-19, which reads this toolchain's profiles. With arguments (a subset,
# e.g. `scripts/test.sh --test api`) or NO_COVERAGE=1 the tests run plainly.
cov_version=0.9.1
llvm_bin=/usr/lib/llvm-19/bin
if [ "$#" -eq 0 ] && [ "${NO_COVERAGE:-0}" != 1 ]; then
  if [ ! -x "$llvm_bin/llvm-cov" ] || [ ! -x "$llvm_bin/llvm-profdata" ]; then
    echo "installing llvm-19 (apt-get: llvm-cov, llvm-profdata)" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends llvm-19 >/dev/null
  fi
  if ! cargo llvm-cov --version 2>/dev/null | grep -q " $cov_version\$"; then
    echo "installing cargo-llvm-cov $cov_version (cargo install)" >&2
    cargo install --locked --quiet cargo-llvm-cov --version "$cov_version"
  fi
  export LLVM_COV="$llvm_bin/llvm-cov" LLVM_PROFDATA="$llvm_bin/llvm-profdata"
  eval "$(cargo llvm-cov show-env --sh)"
  cargo llvm-cov clean --workspace
  cargo test --locked --no-fail-fast --all-targets
  # Doc tests are not part of --all-targets.
  cargo test --locked --doc
  mkdir -p target/coverage
  # Only src/: not the tests and benches, nor the copy of src/ that tests/image_context.rs
  # builds in a temporary directory (.tmpXXXXXX) and never runs.
  ignore='/(tests|benches)/|/\.tmp[^/]+/'
  cargo llvm-cov report --summary-only --ignore-filename-regex "$ignore" \
    | tee target/coverage/summary.txt
  cargo llvm-cov report --ignore-filename-regex "$ignore" \
    --fail-under-lines "${COVERAGE_MIN_LINES:-80}" --summary-only >/dev/null \
    || { echo "line coverage of src/ is under ${COVERAGE_MIN_LINES:-80} % (target/coverage/summary.txt)" >&2; exit 1; }
else
  cargo test --locked --no-fail-fast --all-targets "$@"
  cargo test --locked --doc
fi
