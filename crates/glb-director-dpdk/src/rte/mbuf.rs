//! Packet buffers: one owned [`Mbuf`], and [`MbufBatch`], a burst of up
//! to [`BURST`] of them as the receive, transmit and ring calls take
//! them.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use dpdk_sys as sys;

use glb_core::path::FrameBuf;

/// Buffers per burst.
pub const BURST: usize = 32;

/// One packet buffer, owned: dropping it returns it to its pool. It
/// cannot outlive the EAL (`'eal`), whose memory it lives in.
///
/// Only the first segment is exposed; the director never enables
/// scattered receive, so received frames are single-segment.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf<'eal>(NonNull<sys::rte_mbuf>, PhantomData<&'eal ()>);

// SAFETY: an mbuf is owned by exactly one Mbuf value at a time; moving
// that ownership to another lcore is how DPDK hands packets between
// cores (through rings).
unsafe impl Send for Mbuf<'_> {}

impl Mbuf<'_> {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `m` must be a valid mbuf that nothing else owns or will free, from
    /// a pool that lives as long as the returned value may.
    pub(crate) unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Self {
        Mbuf(m, PhantomData)
    }

    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf, so reading its header is sound.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively.
        unsafe { self.0.as_mut() }
    }

    /// The port it was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Length of the frame (first segment).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Whether the frame is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame's bytes (first segment).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: data_off + data_len lies inside the buffer of buf_len
        // bytes at buf_addr, which we own.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The NIC's RSS hash, when it computed one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        if self.raw().ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: the flag says the hash union holds the RSS hash.
        Some(unsafe { sys::glb_rte_pktmbuf_rss_hash(self.0.as_ptr()) })
    }
}

impl FrameBuf for Mbuf<'_> {
    #[inline]
    fn parts(&mut self) -> (&mut [u8], usize, usize) {
        let m = self.raw_mut();
        let (addr, buf_len) = (m.buf_addr.cast::<u8>(), usize::from(m.buf_len));
        let (start, len) = (usize::from(m.data_off), usize::from(m.data_len));
        // SAFETY: buf_addr points at buf_len bytes that belong to this
        // mbuf, which we own exclusively for the life of the borrow.
        let buf = unsafe { std::slice::from_raw_parts_mut(addr, buf_len) };
        (buf, start, len)
    }

    #[inline]
    fn set_bounds(&mut self, start: usize, len: usize) {
        let m = self.raw_mut();
        // The packet path only moves bounds within the buffer, whose
        // length is a u16, so these conversions cannot truncate.
        let old = m.data_len;
        m.data_off = start as u16;
        m.data_len = len as u16;
        m.pkt_len = m.pkt_len - u32::from(old) + len as u32;
    }
}

impl Drop for Mbuf<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; after this nothing refers to it.
        unsafe { sys::glb_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// A burst of up to [`BURST`] owned buffers. Dropping it frees them.
pub struct MbufBatch<'eal> {
    slots: [MaybeUninit<Mbuf<'eal>>; BURST],
    /// `slots[..len]` are initialised.
    len: usize,
}

impl std::fmt::Debug for MbufBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBatch").field("len", &self.len).finish()
    }
}

impl Default for MbufBatch<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'eal> MbufBatch<'eal> {
    /// An empty batch.
    pub const fn new() -> Self {
        MbufBatch {
            slots: [const { MaybeUninit::uninit() }; BURST],
            len: 0,
        }
    }

    /// Number of buffers.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no buffer.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    #[inline]
    pub fn free_space(&self) -> usize {
        BURST - self.len
    }

    /// The buffers.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf<'eal>] {
        // SAFETY: the first `len` slots are initialised Mbufs.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast(), self.len) }
    }

    /// The buffers, mutably (e.g. for the packet path).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf<'eal>] {
        // SAFETY: the first `len` slots are initialised Mbufs.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast(), self.len) }
    }

    /// Adds a buffer, or hands it back when the batch is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf<'eal>) -> Result<(), Mbuf<'eal>> {
        if self.len == BURST {
            return Err(m);
        }
        self.slots[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Pointer to the unused slots and how many there are, for DPDK calls
    /// that fill them (receive, ring dequeue).
    #[inline]
    pub(crate) fn spare(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // Mbuf is a transparent wrapper of a non-null mbuf pointer.
        let p = self.slots[self.len..]
            .as_mut_ptr()
            .cast::<*mut sys::rte_mbuf>();
        (p, BURST - self.len)
    }

    /// Records that a DPDK call filled `n` spare slots.
    ///
    /// # Safety
    ///
    /// The first `n` spare slots must now hold valid, non-null mbufs that
    /// this batch owns.
    #[inline]
    pub(crate) unsafe fn filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST);
        self.len += n;
    }

    /// Pointer to the buffers, for DPDK calls that take them (transmit,
    /// ring enqueue).
    #[inline]
    pub(crate) fn raw_ptrs(&mut self) -> *mut *mut sys::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// Records that a DPDK call took ownership of the first `n` buffers,
    /// and moves the rest to the front.
    ///
    /// # Safety
    ///
    /// The first `n` buffers must have been handed over to DPDK.
    #[inline]
    pub(crate) unsafe fn taken(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if n > 0 && rest > 0 {
            // SAFETY: both ranges lie in `slots`; ptr::copy allows overlap.
            unsafe {
                ptr::copy(self.slots.as_ptr().add(n), self.slots.as_mut_ptr(), rest);
            }
        }
        self.len = rest;
    }

    /// Takes every buffer out, in order; those the iterator does not yield
    /// are freed when it is dropped.
    pub fn drain(&mut self) -> Drain<'_, 'eal> {
        let end = self.len;
        // From here on the batch owns nothing, so a leaked Drain leaks
        // buffers rather than freeing them twice.
        self.len = 0;
        Drain {
            batch: self,
            next: 0,
            end,
        }
    }

    /// Frees every buffer.
    pub fn free_all(&mut self) {
        if self.len == 0 {
            return;
        }
        let n = self.len;
        self.len = 0;
        // SAFETY: the first `n` slots were owned mbufs; the batch no
        // longer claims them.
        unsafe { sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr().cast(), n as u32) };
    }
}

impl Drop for MbufBatch<'_> {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// Iterator returned by [`MbufBatch::drain`].
#[derive(Debug)]
pub struct Drain<'a, 'eal> {
    batch: &'a mut MbufBatch<'eal>,
    next: usize,
    end: usize,
}

impl<'eal> Iterator for Drain<'_, 'eal> {
    type Item = Mbuf<'eal>;

    #[inline]
    fn next(&mut self) -> Option<Mbuf<'eal>> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: slots[next..end] are initialised and owned by the drain;
        // each is read exactly once.
        let m = unsafe { self.batch.slots[self.next].assume_init_read() };
        self.next += 1;
        Some(m)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_, '_> {}

impl Drop for Drain<'_, '_> {
    fn drop(&mut self) {
        let n = self.end - self.next;
        if n > 0 {
            // SAFETY: slots[next..end] are owned mbufs nobody else has.
            unsafe {
                sys::rte_pktmbuf_free_bulk(
                    self.batch.slots.as_mut_ptr().add(self.next).cast(),
                    n as u32,
                )
            };
        }
    }
}
