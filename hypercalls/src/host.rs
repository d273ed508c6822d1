//! The host-side [`GuestFactory`]: a guest's tables are heap pages
//! standing at the physical addresses of the pool the host donated.

extern crate std;

use core::ops::Range;
use std::collections::BTreeMap;

use pgtable::host::{CheckingTlb, HostTables};
use pgtable::{PAGE_SIZE, PhysAddr, Stage2Config};
use share::Errno;
use share::host_model::HostPlatform;

use crate::GuestFactory;

/// Builds guest table pools for [`HostPlatform`].
#[derive(Debug, Default)]
pub struct HostGuestFactory {
    pools: BTreeMap<u64, Range<u64>>,
    /// Given to every guest table pool this factory builds.
    pub injector: Option<std::sync::Arc<pgtable::host::FaultInjector>>,
}

impl GuestFactory<HostPlatform> for HostGuestFactory {
    fn build(
        &mut self,
        ipa_bits: u8,
        pool: Range<u64>,
    ) -> Result<(PhysAddr, HostTables, CheckingTlb), Errno> {
        let config = Stage2Config::new(ipa_bits).map_err(|_| Errno::EINVAL)?;
        let pages = ((pool.end - pool.start) / PAGE_SIZE) as usize;
        let mut alloc = HostTables::with_base(pool.start, Some(pages));
        alloc.set_injector(self.injector.clone());
        let root = alloc.alloc_root(config.root_pages()).map_err(|_| Errno::ENOMEM)?;
        if root.0 + (config.root_pages() as u64) * PAGE_SIZE > pool.end {
            return Err(Errno::ENOMEM);
        }
        self.pools.insert(root.0, pool);
        Ok((root, alloc, CheckingTlb::default()))
    }

    fn dismantle(&mut self, _alloc: HostTables, root: PhysAddr) -> Range<u64> {
        self.pools.remove(&root.0).expect("a pool this factory built")
    }

    fn fail_allocation(&mut self, nth: u64) -> bool {
        let Some(injector) = &self.injector else { return false };
        if nth == 0 {
            injector.disarm()
        } else {
            injector.arm(nth)
        }
        true
    }
}
