use crew_driver::{Accelerator, OpenOptions};
use std::time::{Duration, Instant};
fn main() {
    let name = std::env::args().nth(1).unwrap_or("ecp5-25f".into());
    let cfg = crew_hw::instantiated_config(&name).unwrap();
    let model = crew_core::format::Model::from_bytes(include_bytes!("../../host-cli/assets/silero_lstm.crew")).unwrap();
    let t0 = Instant::now();
    let t = crew_sim::SimTransport::new(&cfg).unwrap();
    println!("build {:?}", t0.elapsed());
    let mut a = Accelerator::new(t, OpenOptions::default().with_timeout(Duration::from_secs(600))).unwrap();
    let t0 = Instant::now();
    let r = a.load(&model).unwrap();
    let c0 = a.transport().cycles();
    println!("load {:?} tiles {} words {} cycles {}", t0.elapsed(), r.tiles, r.image_words, c0);
    let x = vec![3i8; model.layers[0].n_in];
    let t0 = Instant::now();
    let run = a.run_layer(0, &x).unwrap();
    let c1 = a.transport().cycles() - c0;
    println!(
        "run {:?} {:?} sim cycles {} -> {:.0} cycles/s",
        t0.elapsed(),
        run.counts,
        c1,
        c1 as f64 / t0.elapsed().as_secs_f64()
    );
}
