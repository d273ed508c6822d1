//! The ghost checker seen through the hypercall ABI, as the EL2 selftests
//! use it: `GhostCheck` reports its figures, and with `x1 = 1` the next
//! compared call must stop with a mismatch that names the call and page.
#![cfg(feature = "ghost")]

use hypercalls::Func;
use tests::sut::Sut;

const RAM: (u64, u64) = (0x40000, 0x40400);

#[test]
fn ghost_check_counts_the_calls_it_compares() {
    let mut sut = Sut::new(&[RAM]);
    let before = sut.hvc(Func::GhostCheck, &[0]);
    assert_eq!(before[1], 0, "status");
    assert_eq!(sut.hvc(Func::HostShareHyp, &[RAM.0])[1], 0);
    assert_eq!(sut.hvc(Func::HostUnshareHyp, &[RAM.0])[1], 0);
    // Not RAM: refused on its arguments, and counted as such.
    assert_ne!(sut.hvc(Func::HostShareHyp, &[RAM.1 + 1])[1], 0);
    let after = sut.hvc(Func::GhostCheck, &[0]);
    assert_eq!(after[2] - before[2], 2, "compared page by page");
    assert_eq!(after[3] - before[3], 1, "refused on arguments");
    assert_eq!(sut.hvc(Func::GhostCheck, &[2])[1] as i64, -22, "EINVAL for x1 > 1");
}

#[test]
#[should_panic(expected = "s2rmap ghost: HostShareHyp returned Ok(()); page 0x40001000")]
fn a_sabotaged_call_stops_with_a_mismatch() {
    let mut sut = Sut::new(&[RAM]);
    assert_eq!(sut.hvc(Func::GhostCheck, &[1])[1], 0);
    // Refused on its arguments: not compared, so the sabotage waits.
    assert_ne!(sut.hvc(Func::HostShareHyp, &[0])[1], 0);
    sut.hvc(Func::HostShareHyp, &[RAM.0 + 1]);
}
