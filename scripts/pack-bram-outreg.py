#!/usr/bin/env python3
"""Pack fabric read registers into the ECP5 block RAMs' output registers (DP16KD REGMODE=OUTREG).

Yosys (0.70) maps every synchronous read port to a DP16KD with its output register off
(REGMODE=NOREG): the read data then leave the block 5.8 ns after the clock (speed 6), where the
output register gives them in 0.9 ns. The core registers every block RAM read in the fabric the
cycle after (two-cycle reads: `tq3`/`aq3` in a lane, the engine's bank-word register), so this
pass moves that register into the DP16KD, the packing a vendor flow does. Cycle behaviour is
unchanged: the output register samples the port's read latch every cycle, as the fabric flip-flop
did.

A read port (A, B, or the 36-bit read port) is packed only when all of its used data pins each
drive exactly one TRELLIS_FF on its DI and nothing else, and each of those flip-flops:
  * is clocked, not inverted, by the port's own clock net (CLKxMUX not inverted either);
  * has no set/reset (LSR tied to 0) and resets to 0 (REGSET=RESET), as the output register does;
  * has no clock enable, or the one clock enable every flip-flop of the port shares (it becomes
    the port's OCE);
and the port's RST is tied to 0. Anything else is left as it is and counted.

In 36-bit mode (DATA_WIDTH_B=36) port B reads all 36 bits on DOA0-17 and DOB0-17; both ports'
output registers are set and both OCEs driven, so whichever register carries the DOA pins, every
data bit is registered exactly once.

usage: pack-bram-outreg.py IN.json OUT.json [--stats STATS.json]
"""

import json
import os
import sys


def is_net(bit):
    return isinstance(bit, int)


def param_str(v):
    # Yosys marks a string parameter that looks like a bit string with a trailing space.
    return v.rstrip(" ") if isinstance(v, str) else v


def param_int(v):
    return int(v, 2) if isinstance(v, str) and set(v) <= {"0", "1"} else int(v)


def pack_module(mod):
    cells = mod["cells"]
    # Who reads each net bit: (cell name, port name) for every input pin, plus module outputs.
    sinks = {}
    for name, c in cells.items():
        dirs = c.get("port_directions", {})
        for port, bits in c["connections"].items():
            if dirs.get(port, "input") != "output":
                for b in bits:
                    if is_net(b):
                        sinks.setdefault(b, []).append((name, port))
    for pname, p in mod.get("ports", {}).items():
        if p["direction"] != "input":
            for b in p["bits"]:
                if is_net(b):
                    sinks.setdefault(b, []).append(("$port", pname))

    stats = {"ports_packed": 0, "flip_flops_absorbed": 0, "ports_left": 0, "reasons_left": {}}

    def leave(reason):
        stats["ports_left"] += 1
        stats["reasons_left"][reason] = stats["reasons_left"].get(reason, 0) + 1

    removed = set()
    for name, c in list(cells.items()):
        if c["type"] != "DP16KD":
            continue
        prm, con = c["parameters"], c["connections"]
        wide = param_int(prm.get("DATA_WIDTH_B", "18")) == 36
        groups = [("B", ["A", "B"])] if wide else [("A", ["A"]), ("B", ["B"])]
        for read_port, reg_ports in groups:
            if any(param_str(prm.get(f"REGMODE_{p}", "NOREG")) != "NOREG" for p in reg_ports):
                continue
            pins = [f"DO{p}{i}" for p in reg_ports for i in range(18)]
            used = [(pin, con[pin][0]) for pin in pins if pin in con and is_net(con[pin][0])]
            used = [(pin, b) for pin, b in used if sinks.get(b)]
            if not used:
                continue
            clk = con.get(f"CLK{read_port}", [None])[0]
            if param_str(prm.get(f"CLK{read_port}MUX", f"CLK{read_port}")) != f"CLK{read_port}":
                leave("inverted block RAM clock")
                continue
            if con.get(f"RST{read_port}", ["0"])[0] != "0":
                leave("port reset in use")
                continue
            ffs, ce, why = [], None, None
            for pin, b in used:
                s = sinks[b]
                if len(s) != 1 or s[0][1] != "DI" or cells[s[0][0]]["type"] != "TRELLIS_FF":
                    why = "read data not only into one flip-flop"
                    break
                ff_name = s[0][0]
                ff = cells[ff_name]
                fp, fc = ff["parameters"], ff["connections"]
                if fc["CLK"][0] != clk or param_str(fp.get("CLKMUX", "CLK")) != "CLK":
                    why = "flip-flop on another clock"
                    break
                if fc.get("LSR", ["0"])[0] != "0" or param_str(fp.get("REGSET", "RESET")) != "RESET":
                    why = "flip-flop with set or reset"
                    break
                cemux = param_str(fp.get("CEMUX", "1"))
                if cemux == "1":
                    this_ce = "1"
                elif cemux == "CE":
                    this_ce = fc["CE"][0]
                else:
                    why = "inverted clock enable"
                    break
                if ce is not None and this_ce != ce:
                    why = "flip-flops with different clock enables"
                    break
                ce = this_ce
                ffs.append((pin, ff_name, fc["Q"][0]))
            if why:
                leave(why)
                continue
            for p in reg_ports:
                prm[f"REGMODE_{p}"] = "OUTREG"
                con[f"OCE{p}"] = [ce]
            for pin, ff_name, q in ffs:
                con[pin] = [q]
                removed.add(ff_name)
            stats["ports_packed"] += 1
            stats["flip_flops_absorbed"] += len(ffs)
    for ff_name in removed:
        del cells[ff_name]
    return stats


def main(argv):
    args = [a for a in argv[1:]]
    stats_path = None
    if "--stats" in args:
        i = args.index("--stats")
        stats_path = args[i + 1]
        del args[i : i + 2]
    if len(args) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    src, dst = args
    with open(src) as f:
        netlist = json.load(f)
    total = {"ports_packed": 0, "flip_flops_absorbed": 0, "ports_left": 0, "reasons_left": {}}
    for mod in netlist["modules"].values():
        if "cells" not in mod:
            continue
        s = pack_module(mod)
        for k in ("ports_packed", "flip_flops_absorbed", "ports_left"):
            total[k] += s[k]
        for r, n in s["reasons_left"].items():
            total["reasons_left"][r] = total["reasons_left"].get(r, 0) + n
    # Write beside the target, then rename: never a half-written netlist.
    tmp = dst + ".tmp"
    with open(tmp, "w") as f:
        json.dump(netlist, f)
    os.replace(tmp, dst)
    if stats_path:
        tmp = stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(total, f, indent=2)
        os.replace(tmp, stats_path)
    left = ", ".join(f"{n} {r}" for r, n in sorted(total["reasons_left"].items())) or "none"
    print(
        f"pack-bram-outreg: {total['ports_packed']} block RAM read ports packed "
        f"({total['flip_flops_absorbed']} flip-flops absorbed); left: {left}"
    )


if __name__ == "__main__":
    main(sys.argv)
