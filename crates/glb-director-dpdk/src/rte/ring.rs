//! Single-producer, single-consumer rings of packet buffers between two
//! lcores (a distributor and one of its workers).

use std::ffi::{CString, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use dpdk_sys as sys;

use super::RteError;
use super::eal::Eal;
use super::mbuf::{BURST, MbufBatch};

#[derive(Debug)]
struct RingInner {
    ptr: NonNull<sys::rte_ring>,
}

// SAFETY: an rte_ring is shared memory meant for use across lcores; the
// single-producer/single-consumer discipline is kept by the Producer and
// Consumer handles, of which exactly one each exists.
unsafe impl Send for RingInner {}
// SAFETY: as above; RingInner itself only counts or frees.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Both ends are gone: nobody can enqueue any more. Free what is
        // still queued, then the ring.
        let mut batch = MbufBatch::new();
        loop {
            let (slots, room) = batch.spare();
            // SAFETY: no handle exists any more, so this thread is the only
            // consumer; `slots` has `room` free pointer slots.
            let n = unsafe {
                sys::glb_rte_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    slots.cast(),
                    room as u32,
                    ptr::null_mut(),
                )
            } as usize;
            if n == 0 {
                break;
            }
            // SAFETY: the ring only ever holds owned mbufs.
            unsafe { batch.filled(n) };
            batch.free_all();
        }
        // SAFETY: the ring is empty and unreferenced.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) }
    }
}

/// The enqueueing end of a ring.
#[derive(Debug)]
pub struct Producer<'eal> {
    ring: Arc<RingInner>,
    _eal: PhantomData<&'eal ()>,
}

/// The dequeueing end of a ring.
#[derive(Debug)]
pub struct Consumer<'eal> {
    ring: Arc<RingInner>,
    _eal: PhantomData<&'eal ()>,
}

/// Creates a ring of `size` slots (a power of two; one stays unused) and
/// returns its two ends.
pub fn spsc<'eal>(
    _eal: &'eal Eal,
    name: &str,
    size: u32,
) -> Result<(Producer<'eal>, Consumer<'eal>), RteError> {
    let what = || format!("rte_ring_create({name}, {size})");
    let cname = CString::new(name).map_err(|_| RteError {
        what: what(),
        errno: libc::EINVAL,
    })?;
    // SAFETY: the EAL is initialised (we borrow it); valid name; the
    // flags make enqueue and dequeue single-threaded, which the two
    // handles guarantee.
    let ptr = unsafe {
        sys::rte_ring_create(
            cname.as_ptr(),
            size,
            sys::rte_socket_id() as c_int,
            sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
        )
    };
    let ptr = NonNull::new(ptr).ok_or_else(|| RteError::from_errno(what()))?;
    let ring = Arc::new(RingInner { ptr });
    Ok((
        Producer {
            ring: Arc::clone(&ring),
            _eal: PhantomData,
        },
        Consumer {
            ring,
            _eal: PhantomData,
        },
    ))
}

impl<'eal> Producer<'eal> {
    /// Moves as many buffers as fit from the front of `batch` into the
    /// ring; returns how many.
    #[inline]
    pub fn enqueue(&mut self, batch: &mut MbufBatch<'eal>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let len = batch.len();
        // SAFETY: this handle is the ring's only producer; the pointers
        // are `len` owned mbufs.
        let n = unsafe {
            sys::glb_rte_ring_enqueue_burst(
                self.ring.ptr.as_ptr(),
                batch.raw_ptrs().cast(),
                len as u32,
                ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring took the first `n` buffers.
        unsafe { batch.taken(n) };
        n
    }
}

impl<'eal> Consumer<'eal> {
    /// Moves up to the batch's free space from the ring into `batch`;
    /// returns how many.
    #[inline]
    pub fn dequeue(&mut self, batch: &mut MbufBatch<'eal>) -> usize {
        let (slots, room) = batch.spare();
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the ring's only consumer; `slots` has
        // `room` free pointer slots.
        let n = unsafe {
            sys::glb_rte_ring_dequeue_burst(
                self.ring.ptr.as_ptr(),
                slots.cast(),
                room.min(BURST) as u32,
                ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring only ever holds owned mbufs, now ours.
        unsafe { batch.filled(n) };
        n
    }

    /// Buffers waiting in the ring.
    pub fn len(&self) -> usize {
        // SAFETY: counting reads the ring's indexes only.
        unsafe { sys::glb_rte_ring_count(self.ring.ptr.as_ptr()) as usize }
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
