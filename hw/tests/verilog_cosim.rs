//! The generated Verilog (including the hand-written bank memories) runs a CREW and a dense
//! layer under Icarus Verilog and must match the CPU reference and the cycle model, like the
//! rust-hdl simulation does. Needs `iverilog` and `vvp` on PATH (scripts/check-verilog.sh needs
//! them too); without them the test fails unless CREW_SKIP_IVERILOG is set.

use crew_core::config::{CoreKind, DeviceConfig};
use crew_core::cycles;
use crew_core::encode::{dense_image, pack_i8, EncodedLayer};
use crew_core::quant::QuantizedLayer;
use crew_core::reference::gemv_i8;
use crew_core::regs::{self, ctrl, status};
use crew_hw::sim::BusTop;
use crew_hw::{TestAccel, TEST_CONFIG};
use rust_hdl::prelude::*;
use std::fmt::Write as _;
use std::process::Command;

fn have_iverilog() -> bool {
    Command::new("iverilog").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// A testbench that writes `writes`, STARTs, polls STATUS, then prints STATUS, CYCLES_LO,
/// MULT_COUNT, ADD_COUNT and `n_out` accumulators, one `R <hex>` line each.
fn testbench(writes: &[(u32, u32)], n_out: usize) -> String {
    let mut body = String::new();
    for &(a, d) in writes {
        writeln!(body, "    xfer(32'h{a:08x}, 32'h{d:08x}, 1, r);").unwrap();
    }
    writeln!(body, "    r = 1; while (r & {}) xfer(32'h{:08x}, 0, 0, r);", status::BUSY, regs::STATUS).unwrap();
    for a in [regs::STATUS, regs::CYCLES_LO, regs::MULT_COUNT, regs::ADD_COUNT] {
        writeln!(body, "    xfer(32'h{a:08x}, 0, 0, r); $display(\"R %h\", r);").unwrap();
    }
    for j in 0..n_out {
        writeln!(body, "    xfer(32'h{:08x}, 0, 0, r); $display(\"R %h\", r);", regs::OUTPUT_WINDOW + 4 * j as u32)
            .unwrap();
    }
    format!(
        "module tb;
  reg clock = 0;
  always #5 clock = ~clock;
  reg [31:0] addr = 0, wdata = 0;
  reg we = 0, valid = 0;
  wire [31:0] rdata;
  wire ready, irq;
  reg [31:0] r;
  top uut(.clock(clock), .addr(addr), .wdata(wdata), .we(we), .valid(valid), .rdata(rdata), .ready(ready), .irq(irq));
  task xfer(input [31:0] a, input [31:0] d, input w, output [31:0] q);
    begin
      addr = a; wdata = d; we = w; valid = 1;
      @(posedge clock); #1;
      while (!ready) begin @(posedge clock); #1; end
      q = rdata; valid = 0; we = 0;
      @(posedge clock); #1;
    end
  endtask
  initial begin
    @(posedge clock); #1;
{body}    $finish;
  end
endmodule
"
    )
}

fn cosim(cfg: &DeviceConfig, name: &str) {
    if !have_iverilog() {
        assert!(
            std::env::var_os("CREW_SKIP_IVERILOG").is_some(),
            "iverilog not found (set CREW_SKIP_IVERILOG to skip)"
        );
        return;
    }
    let (n_out, n_in) = (23usize, 5usize);
    let mut q: Vec<i8> = (0..n_out * n_in).map(|k| ((k * 73 + k / 7) % 29) as i8 - 14).collect();
    // Column 4 has a single value (0-bit indices).
    for j in 0..n_out {
        q[j * n_in + 4] = -7;
    }
    let x: Vec<i8> = vec![5, -128, 127, -3, 9];
    let layer = QuantizedLayer { name: "v".into(), n_out, n_in, q: q.clone(), scales: vec![1.0], bias: None };
    let enc = EncodedLayer::encode(&layer);
    let base = 13u32;
    let image = match cfg.kind {
        CoreKind::Crew => enc.memory_image(),
        CoreKind::Dense => dense_image(&q, n_out, n_in),
    };
    let mut writes: Vec<(u32, u32)> =
        image.iter().enumerate().map(|(k, &w)| (regs::WEIGHT_WINDOW + 4 * (base + k as u32), w)).collect();
    writes.extend(pack_i8(&x).into_iter().enumerate().map(|(k, w)| (regs::INPUT_WINDOW + 4 * k as u32, w)));
    writes.extend([(regs::N_OUT, n_out as u32), (regs::N_IN, n_in as u32), (regs::LAYER_BASE, base)]);
    writes.push((regs::CTRL, ctrl::START));

    let mut uut = TestAccel::build(cfg);
    uut.connect_all();
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/cosim"));
    std::fs::create_dir_all(&dir).unwrap();
    let dut = dir.join(format!("{name}.v"));
    let tb = dir.join(format!("{name}_tb.v"));
    let vvp = dir.join(format!("{name}.vvp"));
    std::fs::write(&dut, generate_verilog(&uut)).unwrap();
    std::fs::write(&tb, testbench(&writes, n_out)).unwrap();
    let c = Command::new("iverilog").arg("-g2012").arg("-o").arg(&vvp).arg(&tb).arg(&dut).output().unwrap();
    assert!(c.status.success(), "iverilog: {}", String::from_utf8_lossy(&c.stderr));
    let run = Command::new("vvp").arg("-n").arg(&vvp).output().unwrap();
    assert!(run.status.success(), "vvp: {}", String::from_utf8_lossy(&run.stderr));
    let out = String::from_utf8_lossy(&run.stdout);
    let vals: Vec<u32> = out
        .lines()
        .filter_map(|l| l.strip_prefix("R "))
        .map(|h| u32::from_str_radix(h.trim(), 16).unwrap_or_else(|_| panic!("not a defined value: {h}")))
        .collect();
    assert_eq!(vals.len(), 4 + n_out, "{out}");
    let uniques: Vec<u16> = enc.descriptors.iter().map(|d| d.unique_count).collect();
    let model = cycles::run_counts(cfg, n_out, &uniques);
    assert_eq!(vals[0], status::DONE, "STATUS");
    assert_eq!(vals[1] as u64, model.cycles, "CYCLES");
    assert_eq!(vals[2] as u64, model.mults, "MULT_COUNT");
    assert_eq!(vals[3] as u64, model.adds, "ADD_COUNT");
    let acc: Vec<i32> = vals[4..].iter().map(|&v| v as i32).collect();
    assert_eq!(acc, gemv_i8(&q, n_out, n_in, &x));
}

#[test]
fn generated_verilog_runs_a_crew_layer_under_iverilog() {
    cosim(&TEST_CONFIG, "crew_test");
}

#[test]
fn generated_verilog_runs_a_dense_layer_under_iverilog() {
    cosim(&TEST_CONFIG.with_kind(CoreKind::Dense), "dense_test");
}
