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

# ---- deploy: kubernetes-validate (tests/deploy_files.rs) ---------------------------------
# The Kubernetes manifests are checked against the API schema by kubernetes-validate
# (PyPI), pinned, in the tests' Python venv target/py-tests (created if missing; pip runs
# only when the pinned version is not installed).
KUBERNETES_VALIDATE_VERSION=1.34.1
if [ ! -x target/py-tests/bin/python ]; then
  python3 -m venv target/py-tests
fi
if ! target/py-tests/bin/python -c "import importlib.metadata as m, sys; \
sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
  echo "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION (pip, target/py-tests)" >&2
  target/py-tests/bin/pip install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
# ---- end deploy ---------------------------------------------------------------------------

cargo test --locked --all-targets "$@"
# Doc tests are not part of --all-targets.
cargo test --locked --doc
