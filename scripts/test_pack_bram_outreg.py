#!/usr/bin/env python3
"""Tests of scripts/pack-bram-outreg.py on small hand-built yosys netlists (stdlib only; run by
scripts/test.sh). Each case is one DP16KD and the flip-flops after it; the pass must pack exactly
the read ports whose data go straight into plain flip-flops on the port's clock."""

import copy
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("pack", os.path.join(HERE, "pack-bram-outreg.py"))
pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack)

CLK, CE, RST_NET, OTHER_CLK = 2, 3, 4, 5


def load(path):
    with open(path) as f:
        return json.load(f)


def ff(di, q, clk=CLK, ce=None, lsr="0", regset="RESET"):
    return {
        "type": "TRELLIS_FF",
        "parameters": {"CEMUX": "CE" if ce is not None else "1 ", "CLKMUX": "CLK", "GSR": "DISABLED",
                       "LSRMUX": "LSR", "REGSET": regset},
        "port_directions": {"CLK": "input", "CE": "input", "LSR": "input", "DI": "input", "Q": "output"},
        "connections": {"CLK": [clk], "LSR": [lsr], "DI": [di], "Q": [q], **({"CE": [ce]} if ce is not None else {})},
    }


def netlist(width_b=2, ffs=None, rstb="0", extra_cells=None, out_bits=None):
    """One DP16KD whose port B data pins DOB0.. drive nets 100.. (and, 36 wide, DOA0.. 200..)."""
    con = {"CLKA": [CLK], "CLKB": [CLK], "RSTA": ["0"], "RSTB": [rstb], "OCEA": ["0"], "OCEB": ["1"]}
    dirs = {k: "input" for k in con}
    n = 18 if width_b == 36 else width_b
    for i in range(n):
        con[f"DOB{i}"] = [100 + i]
        dirs[f"DOB{i}"] = "output"
    if width_b == 36:
        for i in range(18):
            con[f"DOA{i}"] = [200 + i]
            dirs[f"DOA{i}"] = "output"
    ram = {
        "type": "DP16KD",
        "parameters": {"DATA_WIDTH_A": format(width_b, "032b"), "DATA_WIDTH_B": format(width_b, "032b"),
                       "REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "CLKAMUX": "CLKA", "CLKBMUX": "CLKB"},
        "port_directions": dirs,
        "connections": con,
    }
    cells = {"ram": ram}
    if ffs is None:
        ffs = {f"ff{i}": ff(100 + i, 300 + i) for i in range(n)}
        if width_b == 36:
            ffs.update({f"ffa{i}": ff(200 + i, 400 + i) for i in range(18)})
    cells.update(ffs)
    cells.update(extra_cells or {})
    ports = {"o": {"direction": "output", "bits": out_bits or []}}
    return {"modules": {"top": {"ports": ports, "cells": cells, "netnames": {}}}}


class PackTests(unittest.TestCase):
    def run_pack(self, nl):
        nl = copy.deepcopy(nl)
        stats = pack.pack_module(nl["modules"]["top"])
        return nl["modules"]["top"]["cells"], stats

    def test_plain_registers_are_absorbed(self):
        cells, stats = self.run_pack(netlist(width_b=2))
        self.assertEqual(stats["ports_packed"], 1)
        self.assertEqual(stats["flip_flops_absorbed"], 2)
        ram = cells["ram"]
        self.assertEqual(ram["parameters"]["REGMODE_B"], "OUTREG")
        self.assertEqual(ram["parameters"]["REGMODE_A"], "NOREG")
        self.assertEqual(ram["connections"]["DOB0"], [300])
        self.assertEqual(ram["connections"]["DOB1"], [301])
        self.assertEqual(ram["connections"]["OCEB"], ["1"])
        self.assertNotIn("ff0", cells)

    def test_36_bit_read_port_sets_both_registers(self):
        cells, stats = self.run_pack(netlist(width_b=36))
        self.assertEqual((stats["ports_packed"], stats["flip_flops_absorbed"]), (1, 36))
        ram = cells["ram"]
        self.assertEqual((ram["parameters"]["REGMODE_A"], ram["parameters"]["REGMODE_B"]), ("OUTREG", "OUTREG"))
        self.assertEqual((ram["connections"]["OCEA"], ram["connections"]["OCEB"]), (["1"], ["1"]))
        self.assertEqual(ram["connections"]["DOA17"], [417])
        self.assertEqual([c["type"] for c in cells.values()], ["DP16KD"])

    def test_shared_clock_enable_becomes_oce(self):
        ffs = {f"ff{i}": ff(100 + i, 300 + i, ce=CE) for i in range(2)}
        cells, stats = self.run_pack(netlist(width_b=2, ffs=ffs))
        self.assertEqual(stats["ports_packed"], 1)
        self.assertEqual(cells["ram"]["connections"]["OCEB"], [CE])

    def test_left_alone(self):
        cases = {
            "flip-flop on another clock": {"ff0": ff(100, 300, clk=OTHER_CLK), "ff1": ff(101, 301)},
            "flip-flop with set or reset": {"ff0": ff(100, 300, lsr=RST_NET), "ff1": ff(101, 301)},
            "flip-flops with different clock enables": {"ff0": ff(100, 300, ce=CE), "ff1": ff(101, 301)},
            "set flip-flop": {"ff0": ff(100, 300, regset="SET"), "ff1": ff(101, 301)},
        }
        for why, ffs in cases.items():
            with self.subTest(why):
                cells, stats = self.run_pack(netlist(width_b=2, ffs=ffs))
                self.assertEqual(stats["ports_packed"], 0)
                self.assertEqual(cells["ram"]["parameters"]["REGMODE_B"], "NOREG")
                self.assertEqual(cells["ram"]["connections"]["DOB0"], [100])
                self.assertEqual(len(cells), 3)

    def test_read_data_used_elsewhere_is_left(self):
        lut = {"lut": {"type": "LUT4", "port_directions": {"A": "input", "Z": "output"},
                       "connections": {"A": [101], "Z": [500]}, "parameters": {}}}
        cells, stats = self.run_pack(netlist(width_b=2, extra_cells=lut))
        self.assertEqual(stats["ports_packed"], 0)
        _, stats = self.run_pack(netlist(width_b=2, out_bits=[100]))
        self.assertEqual(stats["ports_packed"], 0)

    def test_port_reset_in_use_is_left(self):
        _, stats = self.run_pack(netlist(width_b=2, rstb=RST_NET))
        self.assertEqual((stats["ports_packed"], stats["reasons_left"]), (0, {"port reset in use": 1}))

    def test_command_line_writes_netlist_and_stats(self):
        with tempfile.TemporaryDirectory() as d:
            src, dst, st = (os.path.join(d, n) for n in ("in.json", "out.json", "stats.json"))
            with open(src, "w") as f:
                json.dump(netlist(width_b=4), f)
            out = subprocess.run([sys.executable, os.path.join(HERE, "pack-bram-outreg.py"), src, dst, "--stats", st],
                                 check=True, capture_output=True, text=True).stdout
            self.assertIn("1 block RAM read ports packed (4 flip-flops absorbed)", out)
            self.assertEqual(load(st)["flip_flops_absorbed"], 4)
            self.assertEqual(load(dst)["modules"]["top"]["cells"]["ram"]["parameters"]["REGMODE_B"],
                             "OUTREG")
            self.assertFalse(os.path.exists(dst + ".tmp"))


if __name__ == "__main__":
    unittest.main()
