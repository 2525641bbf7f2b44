//! The packet buffer pool every port receives into.

use std::ffi::{CString, c_int};
use std::marker::PhantomData;
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::RteError;
use super::eal::Eal;
use super::mbuf::Mbuf;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
///
/// It is never freed on its own: buffers may still be in flight in
/// rings or queues when the owner goes away, so the pool lives until
/// [`Eal::cleanup`] releases all DPDK memory (which it borrows for that
/// reason).
#[derive(Debug)]
pub struct Mempool<'eal> {
    ptr: NonNull<sys::rte_mempool>,
    _eal: PhantomData<&'eal Eal>,
}

// SAFETY: a DPDK mempool is safe to use from any lcore or thread (its
// get/put paths are multi-producer/multi-consumer with per-lcore caches).
unsafe impl Send for Mempool<'_> {}
// SAFETY: as above; shared references only allocate, count or free.
unsafe impl Sync for Mempool<'_> {}

/// Data room of each buffer: DPDK's default (2048 bytes plus headroom).
pub const DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

impl<'eal> Mempool<'eal> {
    /// Creates a pool of `count` buffers with a per-lcore cache of `cache`
    /// buffers. `count` is best one less than a power of two.
    pub fn new(_eal: &'eal Eal, name: &str, count: u32, cache: u32) -> Result<Self, RteError> {
        let what = || format!("rte_pktmbuf_pool_create({name}, {count} buffers)");
        let cname = CString::new(name).map_err(|_| RteError {
            what: what(),
            errno: libc::EINVAL,
        })?;
        let cache = cache.min(sys::RTE_MEMPOOL_CACHE_MAX_SIZE);
        // SAFETY: the EAL is initialised (we borrow it); the name is a
        // valid C string and the sizes are within DPDK's limits; the pool
        // lives on the caller's NUMA socket.
        let ptr = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                count,
                cache,
                0,
                DATA_ROOM,
                sys::rte_socket_id() as c_int,
            )
        };
        NonNull::new(ptr)
            .map(|ptr| Mempool {
                ptr,
                _eal: PhantomData,
            })
            .ok_or_else(|| RteError::from_errno(what()))
    }

    /// The raw pool, for queue setup.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Buffers currently handed out.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is live; counting has no other precondition.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Buffers free in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: as for in_use.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Takes one empty buffer from the pool.
    pub fn alloc(&self) -> Option<Mbuf<'eal>> {
        // SAFETY: the pool is live; the returned buffer (if any) is ours.
        let m = unsafe { sys::glb_rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        // SAFETY: a non-null result is a freshly allocated, exclusively
        // owned mbuf.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }
}
