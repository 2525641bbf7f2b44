//! The director's packet path, independent of how packets arrive: a
//! batch of frames in buffers with headroom goes in; each frame is
//! classified, routed and encapsulated in place, and gets a [`Verdict`];
//! the core's counters are updated once per batch.
//!
//! Engines (the offline pcap engine here, DPDK elsewhere) only have to
//! present their buffers through [`FrameBuf`] and act on the verdicts:
//! transmit forwarded frames, hand unclassified ones to the exception
//! path or free them.

use glb_core::encap::{EncapError, EncapParams, Encapsulator};
use glb_core::forward::{BATCH, BatchScratch, Decision, Forwarder, Route, V4Route};

use glb_core::prefetch::prefetch;

use crate::counters::{BatchCounts, CoreCounters};

/// Headroom engines should leave in front of each received frame. The
/// largest encapsulation needs 48 bytes (62 bytes of outer headers minus
/// the frame's own 14-byte Ethernet header); DPDK mbufs have 128.
pub const HEADROOM: usize = 128;

/// A frame in a buffer with headroom.
pub trait FrameBuf {
    /// The whole buffer and the frame's start and length inside it. The
    /// bytes before `start` are headroom the packet path may write.
    fn parts(&mut self) -> (&mut [u8], usize, usize);
    /// Records where the frame now is, after encapsulation.
    fn set_bounds(&mut self, start: usize, len: usize);
}

/// A frame in an owned buffer, for engines without their own buffer type
/// and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl OwnedFrame {
    /// Copies `frame` into a new buffer behind `headroom` free bytes.
    pub fn new(frame: &[u8], headroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + frame.len()];
        buf[headroom..].copy_from_slice(frame);
        OwnedFrame {
            buf,
            start: headroom,
            len: frame.len(),
        }
    }

    /// Replaces the frame, keeping `headroom` bytes in front (reuses the
    /// allocation).
    pub fn reset(&mut self, frame: &[u8], headroom: usize) {
        self.buf.clear();
        self.buf.resize(headroom, 0);
        self.buf.extend_from_slice(frame);
        self.start = headroom;
        self.len = frame.len();
    }

    /// The frame's bytes.
    pub fn frame(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl FrameBuf for OwnedFrame {
    fn parts(&mut self) -> (&mut [u8], usize, usize) {
        (&mut self.buf, self.start, self.len)
    }

    fn set_bounds(&mut self, start: usize, len: usize) {
        self.start = start;
        self.len = len;
    }
}

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Encapsulated in place; transmit it.
    Forward(Route),
    /// Matched no bind: exception path if enabled, else drop.
    Unclassified,
    /// Matched a bind of `table` but its packet is cut off (or a chosen
    /// backend is not IPv4): drop.
    RouteFailed {
        /// The table it matched.
        table: usize,
    },
    /// Routed but could not be encapsulated (no headroom, too large): drop.
    EncapFailed {
        /// The table it matched.
        table: usize,
        /// Why.
        error: EncapError,
    },
}

/// Processes one frame: classify, route, encapsulate in place.
#[inline]
pub fn process_one<F: FrameBuf>(fwd: &Forwarder, enc: &Encapsulator, frame: &mut F) -> Verdict {
    let decision = match frame_bytes(frame) {
        Some(bytes) => fwd.route_frame(bytes),
        None => Decision::Unclassified,
    };
    complete(enc, frame, decision)
}

/// The frame's bytes, or `None` when the engine's bounds are out of its
/// buffer.
#[inline(always)]
fn frame_bytes<F: FrameBuf>(frame: &mut F) -> Option<&[u8]> {
    let (buf, start, len) = frame.parts();
    let end = start.checked_add(len)?;
    let buf: &[u8] = buf;
    buf.get(start..end)
}

/// Encapsulates a routed frame and gives its verdict.
#[inline(always)]
fn complete<F: FrameBuf>(enc: &Encapsulator, frame: &mut F, decision: Decision) -> Verdict {
    match decision {
        Decision::Unclassified => Verdict::Unclassified,
        Decision::RouteFailed { table } => Verdict::RouteFailed { table },
        // By reference: moving the route right after it was written costs
        // a store-forwarding stall per packet.
        Decision::Forward(ref route) => encapsulated(frame, route.table, |buf, start| {
            enc.encapsulate(buf, start, route)
                .map(|bounds| (bounds, *route))
        }),
    }
}

/// [`complete`] for a frame on the common path.
#[inline(always)]
fn complete_v4<F: FrameBuf>(enc: &Encapsulator, frame: &mut F, route: &V4Route) -> Verdict {
    encapsulated(frame, route.table, |buf, start| {
        enc.encapsulate_v4(buf, start, route)
            .map(|bounds| (bounds, route.to_route()))
    })
}

/// Runs `encap` on the frame's buffer and start; on success moves the
/// frame's bounds to the encapsulated packet and forwards it, otherwise
/// the frame (untouched) is dropped as an encapsulation failure of
/// `table`.
#[inline(always)]
fn encapsulated<F: FrameBuf>(
    frame: &mut F,
    table: usize,
    encap: impl FnOnce(&mut [u8], usize) -> Result<((usize, usize), Route), EncapError>,
) -> Verdict {
    let (buf, start, _) = frame.parts();
    match encap(buf, start) {
        Ok(((s, l), route)) => {
            frame.set_bounds(s, l);
            Verdict::Forward(route)
        }
        Err(error) => Verdict::EncapFailed { table, error },
    }
}

/// Processes a batch: `verdicts` is cleared and gets one entry per frame,
/// in order; `counters` is updated once. The outer-header template for
/// `params` is prepared once per batch; engines that keep an
/// [`Encapsulator`] per port can use [`process_batch_with`] instead.
pub fn process_batch<F: FrameBuf>(
    fwd: &Forwarder,
    params: &EncapParams,
    frames: &mut [F],
    verdicts: &mut Vec<Verdict>,
    counters: &CoreCounters,
) {
    let enc = Encapsulator::new(*params);
    process_batch_with(fwd, &enc, frames, verdicts, counters);
}

/// [`process_batch`] with a prepared [`Encapsulator`].
pub fn process_batch_with<F: FrameBuf>(
    fwd: &Forwarder,
    enc: &Encapsulator,
    frames: &mut [F],
    verdicts: &mut Vec<Verdict>,
    counters: &CoreCounters,
) {
    verdicts.clear();
    let mut scratch = Box::default();
    process_batch_each(fwd, enc, frames, counters, &mut scratch, |_, v| {
        verdicts.push(*v)
    });
}

/// Processes a batch and hands each frame's verdict to `each`, with the
/// frame's index, in order; `counters` is updated once. For engines that
/// only need to know where each frame goes, this spares collecting the
/// routes. `scratch` is the routing memory the engine keeps for the core
/// (a few kilobytes, cheaper kept than cleared for every batch).
#[inline]
pub fn process_batch_each<F: FrameBuf>(
    fwd: &Forwarder,
    enc: &Encapsulator,
    frames: &mut [F],
    counters: &CoreCounters,
    scratch: &mut BatchScratch,
    mut each: impl FnMut(usize, &Verdict),
) {
    let mut c = BatchCounts::default();
    let mut router = fwd.batch(scratch);
    for (n, chunk) in frames.chunks_mut(BATCH).enumerate() {
        // Classify every frame, hash them all at once, then finish and
        // encapsulate each.
        router.clear();
        router.push_frames(chunk.iter_mut().map(|f| frame_bytes(f)));
        router.hash();
        // The rows are scattered over the table's 128 KiB and often out
        // of cache: ask for them all now, so they arrive while the first
        // frames are encapsulated.
        for row in router.rows() {
            prefetch(row);
        }
        for (i, f) in chunk.iter_mut().enumerate() {
            let v = match router.v4_route(i) {
                Some(r) => complete_v4(enc, f, &r),
                None => complete(enc, f, router.finish(i)),
            };
            c.count(&v);
            each(n * BATCH + i, &v);
        }
    }
    counters.absorb(frames.len(), &c);
}
