//! The accelerator top: the bus [`Shell`] and the [`Engine`] (memories and datapath), for one
//! configuration. Its ports are the register bus of `crew_core::regs` and an interrupt line.

use crate::bus::Shell;
use crate::engine::Engine;
use crew_core::config::DeviceConfig;
use rust_hdl::prelude::*;

/// See [`Engine`] for the const parameters; [`Accel::new`] checks them against the config.
#[derive(LogicBlock)]
pub struct Accel<
    const IA: usize,
    const L: usize,
    const M: usize,
    const NB: usize,
    const BA: usize,
    const NBW: usize,
    const OBA: usize,
    const TA: usize,
    const PW: usize,
> {
    pub clock: Signal<In, Clock>,
    /// Byte address of the access.
    pub addr: Signal<In, Bits<32>>,
    pub wdata: Signal<In, Bits<32>>,
    /// Write strobe (1 = write, 0 = read), sampled with `valid`.
    pub we: Signal<In, bool>,
    /// The master holds `valid` (and addr, wdata, we) until `ready`; one access per handshake.
    pub valid: Signal<In, bool>,
    pub rdata: Signal<Out, Bits<32>>,
    pub ready: Signal<Out, bool>,
    /// Interrupt: DONE or ERROR with CTRL.IRQ_EN.
    pub irq: Signal<Out, bool>,
    pub shell: Shell,
    pub engine: Engine<IA, L, M, NB, BA, NBW, OBA, TA, PW>,
}

impl<
        const IA: usize,
        const L: usize,
        const M: usize,
        const NB: usize,
        const BA: usize,
        const NBW: usize,
        const OBA: usize,
        const TA: usize,
        const PW: usize,
    > Accel<IA, L, M, NB, BA, NBW, OBA, TA, PW>
{
    pub fn new(cfg: &DeviceConfig) -> Self {
        Accel {
            clock: Default::default(),
            addr: Default::default(),
            wdata: Default::default(),
            we: Default::default(),
            valid: Default::default(),
            rdata: Default::default(),
            ready: Default::default(),
            irq: Default::default(),
            shell: Shell::new(cfg),
            engine: Engine::new(cfg),
        }
    }
}

impl<
        const IA: usize,
        const L: usize,
        const M: usize,
        const NB: usize,
        const BA: usize,
        const NBW: usize,
        const OBA: usize,
        const TA: usize,
        const PW: usize,
    > Logic for Accel<IA, L, M, NB, BA, NBW, OBA, TA, PW>
{
    #[hdl_gen]
    fn update(&mut self) {
        self.shell.clock.next = self.clock.val();
        self.shell.addr.next = self.addr.val();
        self.shell.wdata.next = self.wdata.val();
        self.shell.we.next = self.we.val();
        self.shell.valid.next = self.valid.val();
        self.rdata.next = self.shell.rdata.val();
        self.ready.next = self.shell.ready.val();
        self.irq.next = self.shell.irq.val();

        self.engine.clock.next = self.clock.val();
        self.engine.b_word.next = self.shell.m_word.val();
        self.engine.b_wdata.next = self.shell.m_wdata.val();
        self.engine.b_wwe.next = self.shell.m_wwe.val();
        self.engine.b_iwe.next = self.shell.m_iwe.val();
        self.engine.b_owe.next = self.shell.m_owe.val();
        self.engine.b_wraddr.next = self.shell.m_wraddr.val();
        self.shell.m_wrdata.next = self.engine.b_wrdata.val();
        self.shell.m_irdata.next = self.engine.b_irdata.val();
        self.shell.m_ordata.next = self.engine.b_ordata.val();

        self.engine.go.next = self.shell.run_go.val();
        self.engine.abort.next = self.shell.run_abort.val();
        self.engine.n_out.next = self.shell.run_nout.val();
        self.engine.n_in.next = self.shell.run_nin.val();
        self.engine.base.next = self.shell.run_base.val();
        self.engine.accum.next = self.shell.run_accum.val();
        self.shell.run_done.next = self.engine.done.val();
        self.shell.run_err.next = self.engine.err.val();
        self.shell.run_code.next = self.engine.code.val();
        self.shell.run_mul.next = self.engine.mults.val();
        self.shell.run_add.next = self.engine.adds.val();
    }
}
