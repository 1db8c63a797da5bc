#!/usr/bin/env bash
# The project's test command: install the simulators the RTL tests use (iverilog, verilator; apt,
# only when missing), fetch the real model weights (idempotent, sha256-checked), run every test,
# test the bitstream flow's block RAM output-register pass, then compile and lint the generated
# Verilog of every configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-fpga-tools.sh --no-venv
bash scripts/fetch-models.sh
cargo test --workspace --release
python3 scripts/test_pack_bram_outreg.py
bash scripts/check-verilog.sh
