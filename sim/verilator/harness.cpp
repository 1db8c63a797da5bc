// A bus master for the Verilated CREW core (module `top`), driven over stdin/stdout by
// crew-sim's `VerilatorTransport` (sim/src/verilator.rs). One command per line, hex numbers:
//   W <addr> <data>   write a word (no answer)
//   R <addr>          read a word; answers `D <data>`
//   I <n>             n idle clock cycles (no answer)
//   C                 answers `C <cycles>`, the clock cycles simulated so far
// Errors answer `E <message>` and exit 1. The handshake is the one of the rust-hdl testbench
// (crew_hw::sim::SimCore::try_access): hold valid/addr/wdata/we until ready, take rdata, then
// one idle cycle.
#include "Vtop.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

static std::unique_ptr<Vtop> top;
static uint64_t cycles = 0;

static void cycle() {
    top->clock = 0;
    top->eval();
    top->clock = 1;
    top->eval();
    cycles++;
}

static bool xfer(uint32_t addr, uint32_t data, bool we, uint32_t *out) {
    top->addr = addr;
    top->wdata = data;
    top->we = we;
    top->valid = 1;
    top->eval();
    int n = 0;
    for (;;) {
        cycle();
        n++;
        if (top->ready) break;
        if (n >= 64) return false;
    }
    *out = top->rdata;
    top->valid = 0;
    top->we = 0;
    top->eval();
    cycle();
    return true;
}

int main(int argc, char **argv) {
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    top = std::make_unique<Vtop>(ctx.get());
    top->clock = 0;
    top->valid = 0;
    top->we = 0;
    top->eval();
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        unsigned a = 0, d = 0;
        uint32_t q = 0;
        switch (line[0]) {
        case 'W':
            if (sscanf(line + 1, "%x %x", &a, &d) != 2) { printf("E bad command: %s", line); return 1; }
            if (!xfer(a, d, true, &q)) { printf("E no ready for the write of %08x\n", a); fflush(stdout); return 1; }
            break;
        case 'R':
            if (sscanf(line + 1, "%x", &a) != 1) { printf("E bad command: %s", line); return 1; }
            if (!xfer(a, 0, false, &q)) { printf("E no ready for the read of %08x\n", a); fflush(stdout); return 1; }
            printf("D %08x\n", q);
            fflush(stdout);
            break;
        case 'I':
            if (sscanf(line + 1, "%x", &a) != 1) { printf("E bad command: %s", line); return 1; }
            for (unsigned k = 0; k < a; k++) cycle();
            break;
        case 'C':
            printf("C %llu\n", (unsigned long long)cycles);
            fflush(stdout);
            break;
        case '\n':
            break;
        default:
            printf("E bad command: %s", line);
            return 1;
        }
    }
    top->final();
    // The model must go before its context (a static outliving it hangs at exit).
    top.reset();
    return 0;
}
