//! A host stage-2 fault on a page whose entry a donate + reclaim pair just
//! reset, over and over, as the EL2 benchmark's (e) does, on the host
//! model: for profiling the Rust side
//! (`valgrind --tool=callgrind target/release/examples/profile_fault`).
//!
//! `cargo build --release -p tests --no-default-features --example profile_fault`

use ownership::MemoryMap;
use share::host_model::new_tracker;

fn main() {
    let rounds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let mut memory = MemoryMap::new();
    memory.add(0x4000_0000, 1 << 30).expect("a RAM region");
    let tracker = new_tracker(memory, 40, None);
    let pfn = 0x4123_4000 >> 12;
    tracker.host_fault(pfn << 12).expect("host RAM");
    for _ in 0..rounds {
        tracker.host_donate_hyp(pfn, 1).expect("donate");
        tracker.hyp_donate_host(pfn, 1).expect("reclaim");
        tracker.host_fault(pfn << 12).expect("fault");
    }
    println!("{rounds} rounds, {} host table pages", tracker.counters().host_table_pages);
}
