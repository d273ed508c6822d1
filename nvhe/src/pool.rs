//! The host stage-2 table pool at EL2: the pages Linux reserves for the
//! host stage-2 (`host_s2_pgtable_pages()` of them at `host_s2_pgt_base`),
//! handed out one at a time with a reserve-first discipline.
//!
//! The free/used bitmap lives in caller-provided atomics (a `.bss` static
//! at EL2), so the pool itself is a few words that can move by value
//! through the one-page EL2 stack.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use pgtable::mm::RawTable;
use pgtable::{Error, PAGE_SIZE, PhysAddr, TableAllocator};

/// Pages one pool can manage: 32 MiB of tables, enough to map about 7 GiB
/// of RAM page by page plus 1 GiB of MMIO (Linux's sizing).
pub const MAX_POOL_PAGES: usize = 8192;

/// The bitmap type: one bit per page, set when the page is handed out.
pub type PoolBitmap = [AtomicU64; MAX_POOL_PAGES / 64];

/// How a physical address is reached: `va = pa - offset` (Linux's
/// `hyp_physvirt_offset`; zero on the host).
#[derive(Clone, Copy, Debug)]
pub struct LinearMap {
    pub phys_virt_offset: i64,
}

impl LinearMap {
    #[must_use]
    pub fn va(&self, pa: u64) -> u64 {
        pa.wrapping_sub(self.phys_virt_offset as u64)
    }

    #[must_use]
    pub fn pa(&self, va: u64) -> u64 {
        va.wrapping_add(self.phys_virt_offset as u64)
    }
}

/// A pool of contiguous, page-aligned, mapped pages.
#[derive(Debug)]
pub struct PagePool {
    base: u64,
    pages: usize,
    map: LinearMap,
    used: &'static [AtomicU64],
    free: usize,
    reserved: usize,
    hint: usize,
    /// Shared allocation-failure countdown (selftest kernels).
    faults: Option<&'static AtomicU64>,
}

/// One allocation point under a failure countdown: true when this one
/// must fail (the countdown reaches zero here). Zero means disarmed.
pub fn allocation_point_fails(countdown: &AtomicU64) -> bool {
    let mut left = countdown.load(Ordering::Relaxed);
    while left != 0 {
        match countdown.compare_exchange_weak(left, left - 1, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return left == 1,
            Err(now) => left = now,
        }
    }
    false
}

/// Why a pool cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Base not page-aligned, or no pages.
    BadRange,
    /// More pages than the bitmap (at most [`MAX_POOL_PAGES`]) covers.
    TooLarge,
}

impl PagePool {
    /// A pool over the `pages` pages from physical address `base`, whose
    /// bitmap is `used` (all clear).
    ///
    /// # Safety
    ///
    /// The range must be memory that nothing else uses for as long as the
    /// pool lives, mapped read-write at `map.va(pa)`; `used` must belong
    /// to this pool alone.
    pub unsafe fn new(
        base: u64,
        pages: usize,
        map: LinearMap,
        used: &'static [AtomicU64],
    ) -> Result<Self, PoolError> {
        if !base.is_multiple_of(PAGE_SIZE) || pages == 0 {
            return Err(PoolError::BadRange);
        }
        if pages > used.len() * 64 {
            return Err(PoolError::TooLarge);
        }
        Ok(Self { base, pages, map, used, free: pages, reserved: 0, hint: 0, faults: None })
    }

    /// Makes every reservation an allocation point of `countdown` (see
    /// [`allocation_point_fails`]).
    pub fn inject_failures_from(&mut self, countdown: &'static AtomicU64) {
        self.faults = Some(countdown);
    }

    /// The physical range the pool manages.
    #[must_use]
    pub fn range(&self) -> core::ops::Range<u64> {
        self.base..self.base + self.pages as u64 * PAGE_SIZE
    }

    /// The bitmap the pool uses.
    #[must_use]
    pub fn bitmap(&self) -> &'static [AtomicU64] {
        self.used
    }

    /// Zeroes every page and clears the bitmap: the pool is handed back.
    pub fn scrub(self) {
        for index in 0..self.pages {
            self.zero(index);
        }
        for word in self.used {
            word.store(0, Ordering::Relaxed);
        }
    }

    /// Pages not handed out.
    #[must_use]
    pub fn free_pages(&self) -> usize {
        self.free
    }

    /// Pages handed out.
    #[must_use]
    pub fn used_pages(&self) -> usize {
        self.pages - self.free
    }

    fn bit(&self, index: usize) -> bool {
        self.used[index / 64].load(Ordering::Relaxed) & (1 << (index % 64)) != 0
    }

    fn set_bit(&self, index: usize, value: bool) {
        let mask = 1u64 << (index % 64);
        if value {
            self.used[index / 64].fetch_or(mask, Ordering::Relaxed);
        } else {
            self.used[index / 64].fetch_and(!mask, Ordering::Relaxed);
        }
    }

    /// Takes `n` contiguous pages aligned to `n` pages (for a concatenated
    /// root), zeroed.
    pub fn take_contiguous(&mut self, n: usize) -> Option<PhysAddr> {
        if n == 0 || self.free - self.reserved < n {
            return None;
        }
        let first_aligned =
            (self.base / PAGE_SIZE).next_multiple_of(n as u64) - self.base / PAGE_SIZE;
        let mut start = first_aligned as usize;
        while start + n <= self.pages {
            if (start..start + n).all(|i| !self.bit(i)) {
                for i in start..start + n {
                    self.set_bit(i, true);
                    self.zero(i);
                }
                self.free -= n;
                return Some(PhysAddr(self.base + start as u64 * PAGE_SIZE));
            }
            start += n;
        }
        None
    }

    fn zero(&self, index: usize) {
        let va = self.map.va(self.base + index as u64 * PAGE_SIZE);
        // SAFETY: the page lies inside the pool, which `new`'s caller
        // promised is mapped read-write at `map.va()` and used by nobody
        // else; it was just marked used, so no table references it yet.
        // The view is only used for the stores below.
        let table = unsafe { &*(va as *const RawTable) };
        for entry in table {
            entry.store(0, Ordering::Relaxed);
        }
    }
}

// SAFETY: `table()` returns `map.va(pa)` for pages of the pool, which the
// caller of `PagePool::new` promised are mapped read-write and used by
// nothing else; a page stays valid until `free` (we never unmap).
unsafe impl TableAllocator for PagePool {
    fn reserve(&mut self, pages: usize) -> Result<(), Error> {
        if self.faults.is_some_and(allocation_point_fails) || self.free - self.reserved < pages {
            return Err(Error::NoMemory);
        }
        self.reserved += pages;
        Ok(())
    }

    fn take(&mut self) -> PhysAddr {
        let page = self.take_for_overwrite();
        self.zero(((page.0 - self.base) / PAGE_SIZE) as usize);
        page
    }

    fn take_for_overwrite(&mut self) -> PhysAddr {
        assert!(self.reserved > 0, "s2rmap: table page taken without a reservation");
        let index = (0..self.pages)
            .map(|i| (self.hint + i) % self.pages)
            .find(|&i| !self.bit(i))
            .unwrap_or_else(|| panic!("s2rmap: reserved table page missing"));
        self.set_bit(index, true);
        self.reserved -= 1;
        self.free -= 1;
        self.hint = (index + 1) % self.pages;
        PhysAddr(self.base + index as u64 * PAGE_SIZE)
    }

    fn unreserve(&mut self, pages: usize) {
        self.reserved -= pages;
    }

    fn free(&mut self, page: PhysAddr) {
        let index = ((page.0 - self.base) / PAGE_SIZE) as usize;
        assert!(
            index < self.pages && self.bit(index),
            "s2rmap: freeing a page the pool did not hand out"
        );
        self.set_bit(index, false);
        self.free += 1;
    }

    fn table(&self, page: PhysAddr) -> NonNull<RawTable> {
        // Every walk step comes here: a null check that costs one branch.
        NonNull::new(self.map.va(page.0) as *mut RawTable).unwrap_or_else(|| null_table(page))
    }
}

/// No page of the hyp's linear map is at address zero: a table
/// descriptor that leads there holds a corrupt address.
#[cold]
fn null_table(page: PhysAddr) -> ! {
    panic!("s2rmap: table page {:#x} maps to a null address", page.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool over heap memory, identity "mapped" through its address.
    fn heap_pool(pages: usize) -> (PagePool, Vec<u8>) {
        // Each test its own bitmap: tests run in parallel.
        let bitmap: &'static PoolBitmap =
            Box::leak(Box::new([const { AtomicU64::new(0) }; MAX_POOL_PAGES / 64]));
        let mut mem = vec![0xa5u8; (pages + 1) * PAGE_SIZE as usize];
        let base = (mem.as_mut_ptr() as u64).next_multiple_of(PAGE_SIZE);
        // SAFETY: the range is our own heap buffer, alive for the test.
        let pool = unsafe { PagePool::new(base, pages, LinearMap { phys_virt_offset: 0 }, bitmap) };
        (pool.unwrap(), mem)
    }

    #[test]
    fn reserve_take_free_and_zeroing() {
        let (mut pool, _mem) = heap_pool(8);
        assert_eq!(pool.reserve(9), Err(Error::NoMemory));
        pool.reserve(8).unwrap();
        assert_eq!(pool.reserve(1), Err(Error::NoMemory), "reserved pages are not available");
        let pages: Vec<PhysAddr> = (0..8).map(|_| pool.take()).collect();
        for p in &pages {
            // SAFETY: the page is ours and mapped at its address.
            let table = unsafe { pool.table(*p).as_ref() };
            assert!(
                table.iter().all(|e| e.load(Ordering::Relaxed) == 0),
                "handed-out pages are zeroed"
            );
        }
        assert_eq!(pool.free_pages(), 0);
        pool.free(pages[3]);
        pool.reserve(1).unwrap();
        assert_eq!(pool.take(), pages[3]);
    }

    #[test]
    fn injected_failure_hits_the_nth_reservation_once() {
        static COUNTDOWN: AtomicU64 = AtomicU64::new(0);
        let (mut pool, _mem) = heap_pool(8);
        pool.inject_failures_from(&COUNTDOWN);
        COUNTDOWN.store(2, Ordering::Relaxed);
        pool.reserve(1).unwrap();
        assert_eq!(pool.reserve(1), Err(Error::NoMemory));
        pool.reserve(1).unwrap();
        assert_eq!(COUNTDOWN.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn contiguous_roots_are_aligned() {
        let (mut pool, _mem) = heap_pool(16);
        let root = pool.take_contiguous(4).unwrap();
        assert_eq!(root.0 % (4 * PAGE_SIZE), 0);
        assert_eq!(pool.used_pages(), 4);
        assert!(pool.take_contiguous(64).is_none());
    }

    #[test]
    fn bad_pools_refused() {
        static BITMAP: PoolBitmap = [const { AtomicU64::new(0) }; MAX_POOL_PAGES / 64];
        let map = LinearMap { phys_virt_offset: 0 };
        // SAFETY: never touched: construction fails.
        unsafe {
            assert_eq!(PagePool::new(0x1001, 1, map, &BITMAP).unwrap_err(), PoolError::BadRange);
            assert_eq!(PagePool::new(0x1000, 0, map, &BITMAP).unwrap_err(), PoolError::BadRange);
            assert_eq!(
                PagePool::new(0x1000, MAX_POOL_PAGES + 1, map, &BITMAP).unwrap_err(),
                PoolError::TooLarge
            );
        }
    }
}
