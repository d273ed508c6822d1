//! The EL2 panic path: hand over to the nVHE hypervisor's own `hyp_panic()`, which
//! reports the failure to the host kernel (`kvm: nVHE hyp panic at ...`) and panics it.

unsafe extern "C" {
    /// `arch/arm64/kvm/hyp/nvhe/switch.c`. Resolved by the partial link of `kvm_nvhe.o`.
    fn hyp_panic() -> !;
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: `hyp_panic` takes no arguments, never returns, and may be called from any
    // EL2 context; it is exactly what the C hypervisor does on a fatal error.
    unsafe { hyp_panic() }
}
