//! A thin safe layer over the parts of DPDK the director uses: the EAL
//! and its lcores ([`eal`]), Ethernet ports and their queues
//! ([`ethdev`]), the packet buffer pool ([`mempool`]), packet buffers and
//! bursts of them ([`mbuf`]), and lockless rings between cores
//! ([`ring`]).
//!
//! Every `unsafe` call into DPDK lives in this module, each with the
//! reason it is sound. Ownership is encoded in the types: an [`mbuf::Mbuf`]
//! is one owned buffer, a queue handle is held by exactly one core, and a
//! ring's producer and consumer ends are separate values.

pub mod eal;
pub mod ethdev;
pub mod mbuf;
pub mod mempool;
pub mod ring;

use std::ffi::CStr;
use std::fmt;

use dpdk_sys as sys;

/// A DPDK call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RteError {
    /// What was being done, e.g. `rte_eth_dev_start(port 0)`.
    pub what: String,
    /// The (positive) error number DPDK reported.
    pub errno: i32,
}

impl RteError {
    /// An error from a call that returned `-errno` (or a negative value
    /// with `rte_errno` set).
    pub(crate) fn from_rc(what: impl Into<String>, rc: i32) -> Self {
        let errno = if rc < 0 { -rc } else { rte_errno() };
        RteError {
            what: what.into(),
            errno,
        }
    }

    /// An error from a call that reports through `rte_errno` only (e.g.
    /// one that returned a null pointer).
    pub(crate) fn from_errno(what: impl Into<String>) -> Self {
        RteError {
            what: what.into(),
            errno: rte_errno(),
        }
    }
}

impl fmt::Display for RteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or per-thread
        // NUL-terminated string for any error number.
        let msg = unsafe { CStr::from_ptr(sys::rte_strerror(self.errno)) };
        write!(
            f,
            "{} failed: {} (errno {})",
            self.what,
            msg.to_string_lossy(),
            self.errno
        )
    }
}

impl std::error::Error for RteError {}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no other precondition.
    unsafe { sys::glb_rte_errno() }
}
