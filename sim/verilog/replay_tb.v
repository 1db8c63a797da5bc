// Replays a CREW bus trace (`crew-host run --trace FILE`, driver/src/trace.rs) against the
// generated Verilog of the core (module `top`, from `crew-hw-gen`), and stops at the first read
// whose value differs from the trace, naming the trace line, the address and both values.
//
//   iverilog -g2012 -o replay.vvp replay_tb.v top.v
//   vvp replay.vvp +trace=run.trace +status=1c +busy=1
//
// Timing differs between the recording device and this core (the emulator finishes a run at
// once; the RTL takes its cycles), so STATUS reads are the one exception to "same read, same
// value": a recorded STATUS read with BUSY set is skipped, and a recorded STATUS read without
// BUSY polls this core until BUSY clears, then compares the whole word. Every other read must
// match exactly, including CYCLES, MULT_COUNT, ADD_COUNT and CRC_VALUE.
//
// Bus handshake: the same as the rust-hdl testbench (crew_hw::sim::SimCore::try_access): hold
// valid/addr/wdata/we until ready, take rdata, then one idle cycle.
`timescale 1ns / 1ps
module replay_tb;
  reg clock = 0;
  always #5 clock = ~clock;
  reg [31:0] addr = 0, wdata = 0;
  reg we = 0, valid = 0;
  wire [31:0] rdata;
  wire ready, irq;
  top uut(.clock(clock), .addr(addr), .wdata(wdata), .we(we), .valid(valid), .rdata(rdata),
          .ready(ready), .irq(irq));

  reg [8*4096-1:0] fname;
  reg [8*256-1:0] text;
  reg [8*8-1:0] op;
  reg [31:0] a, d, q, status_addr, busy_mask;
  integer fd, n, line, count, reads, polls, wait_cycles, max_polls;
  time cycles;
  always @(posedge clock) cycles = cycles + 1;

  task xfer(input [31:0] ta, input [31:0] td, input tw, output [31:0] tq);
    begin
      addr = ta; wdata = td; we = tw; valid = 1;
      wait_cycles = 0;
      @(posedge clock); #1;
      while (!ready) begin
        wait_cycles = wait_cycles + 1;
        if (wait_cycles > 64) begin
          $display("REPLAY HANG line %0d: no ready for the %s of %08h", line, tw ? "write" : "read", ta);
          $fatal(1);
        end
        @(posedge clock); #1;
      end
      tq = rdata; valid = 0; we = 0;
      @(posedge clock); #1;
    end
  endtask

  initial begin
    cycles = 0;
    if (!$value$plusargs("trace=%s", fname)) begin
      $display("REPLAY USAGE: vvp replay.vvp +trace=FILE [+status=HEX] [+busy=HEX] [+max_polls=N]");
      $fatal(1);
    end
    if (!$value$plusargs("status=%h", status_addr)) status_addr = 32'h1c;
    if (!$value$plusargs("busy=%h", busy_mask)) busy_mask = 32'h1;
    if (!$value$plusargs("max_polls=%d", max_polls)) max_polls = 10000000;
    fd = $fopen(fname, "r");
    if (fd == 0) begin
      $display("REPLAY NOFILE %0s", fname);
      $fatal(1);
    end
    line = 0; count = 0; reads = 0;
    @(posedge clock); #1;
    while (!$feof(fd)) begin
      text = 0;
      n = $fgets(text, fd);
      if (n > 0) begin
        line = line + 1;
        if ($sscanf(text, "%s %h %h", op, a, d) == 3 && (op == "W" || op == "R")) begin
          count = count + 1;
          if (op == "W") begin
            xfer(a, d, 1, q);
          end else if (a == status_addr && (d & busy_mask) != 0) begin
            // The recording device was still busy here; this core's timing decides.
          end else begin
            xfer(a, 0, 0, q);
            reads = reads + 1;
            polls = 0;
            while (a == status_addr && (q & busy_mask) != 0) begin
              polls = polls + 1;
              if (polls > max_polls) begin
                $display("REPLAY BUSY line %0d: STATUS still busy after %0d polls", line, polls);
                $fatal(1);
              end
              xfer(a, 0, 0, q);
            end
            if (q !== d) begin
              $display("REPLAY MISMATCH line %0d addr %08h trace %08h verilog %08h", line, a, d, q);
              $fatal(1);
            end
          end
        end
      end
    end
    $display("REPLAY OK transactions %0d reads %0d cycles %0d", count, reads, cycles);
    $finish;
  end
endmodule
