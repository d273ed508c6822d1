//! How one call's cost grows with the size of host memory: share+unshare
//! and donate+reclaim of single pages in RAM maps of 1 GiB, 64 GiB and
//! 1 TiB, with the host stage-2 built lazily. The pages come from a
//! working set of the same shape in every map (a 256 MiB window at the top
//! of RAM), so the figures compare memory sizes, not access locality. The three sizes
//! are measured in interleaved rounds in one run, and only their ratio is
//! reported: the machine is noisy, absolute times are not comparable
//! across runs.
//!
//! `cargo bench -p tests --no-default-features --bench scaling`

use std::time::Instant;

use ownership::MemoryMap;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use share::Tracker;
use share::host_model::{HostPlatform, new_tracker};

const GIB: u64 = 1 << 30;
const BASE: u64 = 0x80_0000_0000;
const ROUNDS: usize = 15;
const OPS_PER_ROUND: usize = 4000;
const WINDOW: u64 = 256 << 20;

struct Machine {
    name: &'static str,
    tracker: Tracker<HostPlatform>,
    pages: u64,
    rng: StdRng,
    samples: [Vec<f64>; 2],
}

impl Machine {
    fn new(name: &'static str, size: u64) -> Self {
        let mut memory = MemoryMap::new();
        memory.add(BASE, size).unwrap();
        Self {
            name,
            tracker: new_tracker(memory, 48, None),
            pages: size >> 12,
            rng: StdRng::seed_from_u64(1),
            samples: [Vec::new(), Vec::new()],
        }
    }

    /// One round of each pair; records ns per pair.
    fn round(&mut self) {
        let window = WINDOW >> 12;
        let first = (BASE >> 12) + self.pages - window;
        let pfns: Vec<u64> =
            (0..OPS_PER_ROUND).map(|_| first + self.rng.random_range(0..window)).collect();
        let t = Instant::now();
        for &pfn in &pfns {
            self.tracker.host_share_hyp(pfn, 1).unwrap();
            self.tracker.host_unshare_hyp(pfn, 1).unwrap();
        }
        self.samples[0].push(t.elapsed().as_nanos() as f64 / OPS_PER_ROUND as f64);
        let t = Instant::now();
        for &pfn in &pfns {
            self.tracker.host_donate_hyp(pfn, 1).unwrap();
            self.tracker.hyp_donate_host(pfn, 1).unwrap();
        }
        self.samples[1].push(t.elapsed().as_nanos() as f64 / OPS_PER_ROUND as f64);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut machines = [
        Machine::new("1 GiB", GIB),
        Machine::new("64 GiB", 64 * GIB),
        Machine::new("1 TiB", 1024 * GIB),
    ];
    for _ in 0..ROUNDS {
        for m in &mut machines {
            m.round();
        }
    }
    println!(
        "{:<8} {:>22} {:>24} {:>12}",
        "RAM", "share+unshare (rel.)", "donate+reclaim (rel.)", "table pages"
    );
    let base = [median(&machines[0].samples[0]), median(&machines[0].samples[1])];
    let mut worst: f64 = 1.0;
    for m in &machines {
        let rel = [median(&m.samples[0]) / base[0], median(&m.samples[1]) / base[1]];
        worst = worst.max(rel[0]).max(rel[1]);
        println!(
            "{:<8} {:>22.2} {:>24.2} {:>12}",
            m.name,
            rel[0],
            rel[1],
            m.tracker.counters().host_table_pages
        );
    }
    println!("worst ratio against 1 GiB: {worst:.2} (target: within 1.2)");
}
