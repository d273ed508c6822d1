//! Feeds raw register tuples to the hypercall dispatcher and checks every
//! invariant, and break-before-make, after each call.
//!
//! Each call takes 1 + 7 × 2 bytes: a function selector, then for each of
//! x1..x7 a "kind" byte and a value byte. Kinds steer values towards the
//! edges that matter (pfns in and around RAM, MMIO, u64::MAX, overflowing
//! counts, guest handles) so the fuzzer spends its time past decoding.
#![no_main]

use hypercalls::host::HostGuestFactory;
use hypercalls::{Caps, Func};
use libfuzzer_sys::fuzz_target;
use ownership::MemoryMap;
use share::host_model::new_tracker;

const RAM_PFN: u64 = 0x40000;
const RAM_PAGES: u64 = 0x200;

fn value(kind: u8, v: u8) -> u64 {
    let v64 = u64::from(v);
    match kind % 12 {
        0 => RAM_PFN + v64 % 64,                 // hot RAM pages
        1 => RAM_PFN + v64 * 2,                  // anywhere in RAM
        2 => [RAM_PFN - 1, RAM_PFN + RAM_PAGES, RAM_PFN + RAM_PAGES - 1, 0, 0x9000][v as usize % 5],
        3 => [u64::MAX, u64::MAX - v64, 1 << 36, 1 << 52, 1 << 63][v as usize % 5],
        4 => v64 % 9,                            // small counts, 0 included
        5 => 2 + v64 % 4,                        // guest handles
        6 => v64 % 16,                           // protected gfns
        7 => (1 << 27) + v64 % 16,               // unprotected gfns of a 40-bit guest
        8 => [36, 40, 44, 31, 49][v as usize % 5], // IPA sizes
        9 => (v64 % 32) << 12,                   // IPAs
        10 => 0x50000 + (v64 % 4) * 64,          // guest pool pfns
        _ => v64.wrapping_mul(0x0101_0101_0101_0101),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut memory = MemoryMap::new();
    memory.add(RAM_PFN << 12, RAM_PAGES << 12).unwrap();
    memory.add(0x50000 << 12, 256 << 12).unwrap();
    let tracker = new_tracker(memory, 48, Some(64));
    let mut factory = HostGuestFactory::default();
    let caps = Caps::ALL;
    for call in data.chunks_exact(15).take(64) {
        let mut regs = [0u64; 8];
        let func = Func::ALL[call[0] as usize % Func::ALL.len()];
        // An occasional ID outside our range checks the NotOurs path.
        regs[0] = if call[0] >= 250 { u64::from(call[1]) << 24 } else { func.id() };
        for i in 1..8 {
            regs[i] = value(call[2 * i - 1], call[2 * i]);
        }
        let before = regs;
        let handled = hypercalls::dispatch(&tracker, &mut factory, caps, &mut regs);
        if !handled {
            assert_eq!(regs, before, "a foreign call must be left alone");
        }
        if let Err(v) = tracker.check_invariants() {
            panic!("after {before:x?}: {v}");
        }
        tracker.with_platform(|_, tlb, _, _| tlb.check_quiescent()).unwrap_or_else(|e| panic!("{e}"));
    }
});
