#!/usr/bin/env bash
# The project's test command: fetch the real model weights (idempotent), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-models.sh
cargo test --workspace --release
if [ -x scripts/check-verilog.sh ] || [ -f scripts/check-verilog.sh ]; then
  bash scripts/check-verilog.sh
fi
