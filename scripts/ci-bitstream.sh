#!/usr/bin/env bash
# CI: rebuild the ULX3S 25F bitstream from scratch and check it, without publishing it:
#   * place and route meets the core clock constraint (Fmax achieved >= constraint);
#   * `yowasp-ecpunpack` reads the bitstream back as an LFE5U-25F;
#   * the build's manifest names the same part and core configuration as the committed one.
# The bitstream bytes are NOT compared with bitstreams/ulx3s-25f/crew.bit: another nextpnr build or
# seed places differently. Takes about 6 minutes on one core (docs/fpga.md); needs the tools of
# scripts/install-fpga-tools.sh (`--no-apt` is enough).
#
#   scripts/ci-bitstream.sh [extra build-bitstream.sh options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="$ROOT/build/ci-ulx3s-25f"
rm -rf "$B"
t0=$(date +%s)
rc=0
"$ROOT/scripts/build-bitstream.sh" ulx3s-25f --no-publish --build-dir "$B" "$@" || rc=$?
t1=$(date +%s)
if [ "$rc" = 3 ]; then
    echo "ci-bitstream: FAIL: timing not met on the 25F (see $B/manifest.json, $B/nextpnr.log)" >&2
    exit 1
elif [ "$rc" != 0 ]; then
    echo "ci-bitstream: FAIL: the build failed (exit $rc)" >&2
    exit 1
fi
python3 - "$B/manifest.json" "$ROOT/bitstreams/ulx3s-25f/manifest.json" <<'PY'
import json, os, sys
new = json.load(open(sys.argv[1]))
assert new["part"] == "LFE5U-25F", new["part"]
assert new["device_check"] == ".device LFE5U-25F", new["device_check"]
f = new["fmax_mhz"]
assert f["achieved"] >= f["constraint"], f
if os.path.exists(sys.argv[2]):
    old = json.load(open(sys.argv[2]))
    assert old["part"] == new["part"], (old["part"], new["part"])
    keys = ["kind", "lanes", "groups", "mults", "wmem_words", "ibuf_depth", "obuf_depth", "clock_mhz"]
    diff = {k: (old["core"].get(k), new["core"].get(k)) for k in keys if old["core"].get(k) != new["core"].get(k)}
    if diff:
        print(f"ci-bitstream: note: the committed bitstream has another core configuration: {diff}")
    print(f"ci-bitstream: Fmax {f['achieved']} MHz (committed build: {old['fmax_mhz']['achieved']} MHz)")
    same = "the same as" if new["sha256"] == old.get("sha256") else "different from"
    print(f"ci-bitstream: sha256 {new['sha256']}: {same} the committed bitstream's")
r = new["resources"]
print("ci-bitstream: OK: LFE5U-25F, Fmax %.1f >= %.1f MHz, LUT %d FF %d DSP %d EBR %d"
      % (f["achieved"], f["constraint"], r["lut4"]["used"], r["ff"]["used"], r["dsp"]["used"], r["ebr"]["used"]))
PY
echo "ci-bitstream: total $((t1 - t0)) s"
