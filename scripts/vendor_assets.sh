#!/usr/bin/env bash
# Refreshes the dashboard's vendored chart library from npm (only needed to change its
# version): installs what web/package-lock.json pins, then copies the dist files that
# src/web embeds. The copies are committed, so `cargo build` never needs npm.
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund
mkdir -p vendor
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css vendor/
cp node_modules/uplot/LICENSE vendor/uPlot.LICENSE
echo "vendored uPlot $(node -p 'require("./node_modules/uplot/package.json").version') into web/vendor"
