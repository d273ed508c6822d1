//! The EL2 panic path: the message goes into `s2rmap_panic_message`, then
//! control passes to the nVHE hypervisor's own `hyp_panic()`, which
//! reports the failure to the host kernel (`kvm: nVHE hyp panic at ...`)
//! and panics it.
//!
//! The host can read the message only where it can read hyp memory after
//! a hyp panic: without pKVM, or with `CONFIG_NVHE_EL2_DEBUG`, whose
//! `__hyp_do_panic` turns the host stage-2 off. The s2rmap patch prints it
//! from `nvhe_hyp_panic_handler()` there; a production kernel keeps it
//! in hyp memory, unread.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

unsafe extern "C" {
    /// `arch/arm64/kvm/hyp/nvhe/switch.c`. Resolved by the partial link of `kvm_nvhe.o`.
    fn hyp_panic() -> !;
}

/// Bytes of the message kept, its terminating NUL included.
const MESSAGE_BYTES: usize = 1024;

/// The first panic's message, NUL-terminated; `.hyp.bss`.
#[repr(transparent)]
pub struct PanicMessage(UnsafeCell<[u8; MESSAGE_BYTES]>);

// SAFETY: written only by the CPU that wins `WRITING`, once, and read by
// the host only after that CPU has left EL2 for good.
unsafe impl Sync for PanicMessage {}

#[unsafe(export_name = "s2rmap_panic_message")]
pub static PANIC_MESSAGE: PanicMessage = PanicMessage(UnsafeCell::new([0; MESSAGE_BYTES]));

/// Set by the first CPU to panic: later panics (other CPUs) leave the
/// message alone.
static WRITING: AtomicBool = AtomicBool::new(false);

/// Writes into the message buffer, truncating, always leaving a NUL.
struct Truncating<'a> {
    buf: &'a mut [u8; MESSAGE_BYTES],
    len: usize,
}

impl Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = MESSAGE_BYTES - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if !WRITING.swap(true, Ordering::AcqRel) {
        // SAFETY: only the CPU that set `WRITING` gets here, once; nothing
        // else writes the buffer, and the host reads it only after this
        // CPU has left EL2 through `hyp_panic`.
        let buf = unsafe { &mut *PANIC_MESSAGE.0.get() };
        let mut out = Truncating { buf, len: 0 };
        let _ = write!(out, "{}", info.message());
        if let Some(at) = info.location() {
            let _ = write!(out, " ({}:{})", at.file(), at.line());
        }
        let end = out.len;
        out.buf[end] = 0;
    }
    // SAFETY: `hyp_panic` takes no arguments, never returns, and may be called from any
    // EL2 context; it is exactly what the C hypervisor does on a fatal error.
    unsafe { hyp_panic() }
}
