//! One share + unshare pair of one page, over and over, as the EL2
//! benchmark's (b) does, on the host model: for profiling the Rust side
//! (`valgrind --tool=callgrind target/release/examples/profile_share`).
//!
//! `cargo build --release -p tests --no-default-features --example profile_share`

use ownership::MemoryMap;
use share::host_model::new_tracker;

fn main() {
    let pairs: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let mut memory = MemoryMap::new();
    memory.add(0x4000_0000, 1 << 30).expect("a RAM region");
    let tracker = new_tracker(memory, 40, None);
    let pfn = 0x4123_4000 >> 12;
    // Map the page the way the host's first touch does: a whole block.
    tracker.host_fault(pfn << 12).expect("host RAM");
    for _ in 0..pairs {
        tracker.host_share_hyp(pfn, 1).expect("share");
        tracker.host_unshare_hyp(pfn, 1).expect("unshare");
    }
    println!("{pairs} pairs, {} host table pages", tracker.counters().host_table_pages);
}
