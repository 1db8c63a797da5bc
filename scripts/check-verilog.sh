#!/usr/bin/env bash
# Generate the Verilog of every preset and kind with crew-hw-gen, then compile it with
# iverilog -g2012 and lint it with verilator --lint-only.
#   -Wno-WIDTH: rust-hdl's generated Verilog mixes widths in assignments (documented in
#               docs/architecture-notes.md section 5).
#   -Wno-UNOPTFLAT: rust-hdl emits one `always @(*)` block per module, and Verilator orders
#               whole blocks: the shell reads `run_done` and drives `run_go`/`run_abort` in one
#               block, the engine reads `go`/`abort` and drives `done` in another, which
#               Verilator reports as a (block-level, not bit-level) combinational cycle. It is a
#               simulation-speed warning; the netlist has no loop (yosys `check -assert` in
#               docs/hw.md's synthesis run passes).
# Everything else must lint clean.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/verilog}
mkdir -p "$out"
cargo build -q -p crew-hw --bin crew-hw-gen
gen=${CARGO_TARGET_DIR:-target}/debug/crew-hw-gen
for config in ecp5-25f ecp5-85f; do
  for kind in crew dense; do
    v=$("$gen" --config "$config" --kind "$kind" -o "$out")
    echo "== $v"
    iverilog -g2012 -o "$out/$(basename "$v" .v).vvp" "$v"
    verilator --lint-only -Wno-WIDTH -Wno-UNOPTFLAT --top-module top "$v"
  done
done
echo "all Verilog compiles and lints"
