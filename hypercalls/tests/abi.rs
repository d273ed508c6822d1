//! The C header agrees with the Rust layout; decoding refuses malformed
//! arguments; a production build refuses the test-only calls.

use std::process::Command;

use hypercalls::host::HostGuestFactory;
use hypercalls::*;
use ownership::MemoryMap;
use share::Errno;
use share::host_model::new_tracker;

#[test]
fn committed_header_is_the_generated_one() {
    let mut generated = String::new();
    header::write_header(&mut generated).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/s2rmap_abi.h"))
            .unwrap();
    assert!(
        committed == generated,
        "include/s2rmap_abi.h is stale: run `cargo run -p hypercalls --example gen-header > hypercalls/include/s2rmap_abi.h`"
    );
}

/// The header's `_Static_assert`s check the C compiler's layout against the
/// Rust offsets; this compiles it, and a deliberately wrong copy must not.
#[test]
fn header_layout_matches_in_c() {
    let dir = std::env::temp_dir().join(format!("s2rmap-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.c");
    std::fs::write(
        &good,
        format!(
            "#include \"{}/include/s2rmap_abi.h\"\nint main(void) {{ return 0; }}\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let ok = Command::new("cc").args(["-fsyntax-only", "-std=c11"]).arg(&good).status().unwrap();
    assert!(ok.success(), "the generated header does not compile");
    let mut header = String::new();
    header::write_header(&mut header).unwrap();
    let broken = header.replace("\t__u32 pins;", "\t__u64 pins;");
    let bad = dir.join("bad.c");
    std::fs::write(&bad, broken).unwrap();
    let status = Command::new("cc")
        .args(["-fsyntax-only", "-std=c11", "-x", "c"])
        .arg(&bad)
        .status()
        .unwrap();
    assert!(!status.success(), "a layout change must break the static asserts");
}

#[test]
fn function_ids_follow_linux() {
    // KVM_HOST_SMCCC_ID(9) and (10): __pkvm_host_share_hyp / unshare_hyp in 6.12.
    assert_eq!(Func::HostShareHyp.id(), 0xc600_0009);
    assert_eq!(Func::HostUnshareHyp.id(), 0xc600_000a);
    // Ours come after __pkvm_teardown_vm (25).
    assert!(
        Func::ALL
            .iter()
            .filter(|f| !matches!(f, Func::HostShareHyp | Func::HostUnshareHyp))
            .all(|f| *f as u32 > 25)
    );
    // The SVE hint bit is ignored, as Linux strips it.
    let mut regs = [Func::CountersQuery.id() | SMCCC_CALL_HINTS, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(decode(&regs, Caps::default()), Decoded::Call(Call::CountersQuery));
    regs[0] = 0xc600_0011; // __kvm_tlb_flush_vmid_range: Linux's, not ours
    assert_eq!(decode(&regs, Caps::default()), Decoded::NotOurs);
    regs[0] = 0x8400_0000; // PSCI
    assert_eq!(decode(&regs, Caps::default()), Decoded::NotOurs);
}

#[test]
fn every_function_number_decodes_to_its_function_and_no_other_does() {
    for n in 0..=0x1_0000u64 {
        let listed = Func::ALL.iter().copied().find(|f| *f as u64 == n);
        assert_eq!(Func::from_number(n), listed, "function number {n}");
    }
    assert_eq!(Func::from_number(u64::MAX), None);
}

#[test]
fn malformed_arguments_are_einval() {
    let caps = Caps { test_calls: false, guests: true };
    let call = |f: Func, a: &[u64]| {
        let mut r = [0u64; 8];
        r[0] = f.id();
        r[1..=a.len()].copy_from_slice(a);
        decode(&r, caps)
    };
    assert_eq!(call(Func::HostDonateHyp, &[0x40000, 0]), Decoded::Invalid(Errno::EINVAL));
    assert_eq!(
        call(Func::HostDonateHyp, &[0x40000, MAX_PAGES_PER_CALL + 1]),
        Decoded::Invalid(Errno::EINVAL)
    );
    assert_eq!(call(Func::HostDonateGuest, &[1 << 32, 1, 1, 1]), Decoded::Invalid(Errno::EINVAL));
    assert_eq!(call(Func::HostDonateGuest, &[1, 1, 1, 1]), Decoded::Invalid(Errno::ENOENT));
    assert_eq!(call(Func::GuestCreate, &[40, 0x40000, 0]), Decoded::Invalid(Errno::EINVAL));
    // Flags outside the permitted mask are filtered, never passed on.
    assert_eq!(GuestCreateArgs::from_word(0xffff_ff28), GuestCreateArgs { ipa_bits: 40, flags: 0 });
}

#[test]
fn guest_calls_refused_without_guest_support() {
    let mut regs = [Func::GuestCreate.id(), 40, 0x40000, 64, 0, 0, 0, 0];
    assert_eq!(decode(&regs, Caps { test_calls: true, guests: false }), Decoded::Unsupported);
    regs[0] = Func::HostDonateGuest.id();
    assert_eq!(decode(&regs, Caps { test_calls: true, guests: false }), Decoded::Unsupported);
}

#[test]
fn production_build_refuses_test_calls() {
    let mut memory = MemoryMap::new();
    memory.add(0x4000_0000, 0x20_0000).unwrap();
    let tracker = new_tracker(memory, 48, None);
    let mut factory = HostGuestFactory::default();
    let production = Caps { test_calls: false, guests: true };
    let mut regs = [Func::HostShareHyp.id(), 0x40000, 0, 0, 0, 0, 0, 0];
    assert!(dispatch(&tracker, &mut factory, production, &mut regs));
    assert_eq!((regs[0], regs[1]), (SMCCC_RET_SUCCESS, 0));
    for f in [
        Func::HypPin,
        Func::HypUnpin,
        Func::GuestShareHost,
        Func::GuestUnshareHost,
        Func::GuestRelinquish,
    ] {
        let mut regs = [f.id(), 0x40000, 1, 1, 0, 0, 0, 0];
        assert!(dispatch(&tracker, &mut factory, production, &mut regs));
        assert_eq!(regs[0], SMCCC_RET_NOT_SUPPORTED, "{f:?} must be refused");
    }
    // The pin really did not happen: the page can still be unshared.
    let mut regs = [Func::HostUnshareHyp.id(), 0x40000, 0, 0, 0, 0, 0, 0];
    assert!(dispatch(&tracker, &mut factory, production, &mut regs));
    assert_eq!(regs[1], 0);
}

#[test]
fn report_structures_round_trip_through_registers() {
    let r = PageReport {
        owner: 7,
        host_state: 3,
        hyp_state: 1,
        mapped: 1,
        reserved: 0,
        pins: 9,
        guest_shares: 0x1234_5678,
    };
    assert_eq!(PageReport::from_regs(r.to_regs()), r);
    // The register image is the structure's little-endian memory image.
    let regs = r.to_regs();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&regs[0].to_le_bytes());
    bytes[8..].copy_from_slice(&regs[1].to_le_bytes());
    assert_eq!(u32::from_le_bytes(bytes[0..4].try_into().unwrap()), 7);
    assert_eq!(bytes[4], 3);
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 9);
    let c = Counters { table_pages: 1, leaves: [2, 3, 4, 5], host_faults: 6 };
    assert_eq!(Counters::from_regs(c.to_regs()), c);
}
