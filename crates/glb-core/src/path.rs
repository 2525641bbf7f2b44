//! The director's packet path, whatever the engine: a frame in, a verdict
//! and the output bytes out. A batch of frames in buffers with headroom
//! goes in; each frame is inspected ([`crate::inspect`]), classified
//! ([`crate::classify`]), hashed ([`crate::flowhash`]), routed
//! ([`crate::route`], [`crate::batch`]) and encapsulated in place
//! ([`crate::encap`]), and gets a [`Verdict`]; the batch's outcomes are
//! added to the engine's counters once ([`Tally`]).
//!
//! Engines (DPDK, the offline pcap engine, the XDP engine's differential
//! test) only present their buffers through [`FrameBuf`] and act on the
//! verdicts: transmit forwarded frames, hand unclassified ones to the
//! exception path or free them. No step of the path lives in an engine.

use crate::batch::{BATCH, BatchScratch};
use crate::encap::{EncapError, EncapParams, Encapsulator};
use crate::prefetch::prefetch;
use crate::route::{Decision, Forwarder, Route, V4Route};

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
/// in order; `tally` is updated once. The outer-header template for
/// `params` is prepared once per batch; engines that keep an
/// [`Encapsulator`] per port can use [`process_batch_with`] instead.
pub fn process_batch<F: FrameBuf>(
    fwd: &Forwarder,
    params: &EncapParams,
    frames: &mut [F],
    verdicts: &mut Vec<Verdict>,
    tally: &impl Tally,
) {
    let enc = Encapsulator::new(*params);
    process_batch_with(fwd, &enc, frames, verdicts, tally);
}

/// [`process_batch`] with a prepared [`Encapsulator`].
pub fn process_batch_with<F: FrameBuf>(
    fwd: &Forwarder,
    enc: &Encapsulator,
    frames: &mut [F],
    verdicts: &mut Vec<Verdict>,
    tally: &impl Tally,
) {
    verdicts.clear();
    let mut scratch = Box::default();
    process_batch_each(fwd, enc, frames, tally, &mut scratch, |_, v| {
        verdicts.push(*v)
    });
}

/// Processes a batch and hands each frame's verdict to `each`, with the
/// frame's index, in order; `tally` is updated once. For engines that
/// only need to know where each frame goes, this spares collecting the
/// routes. `scratch` is the routing memory the engine keeps for the core
/// (a few kilobytes, cheaper kept than cleared for every batch).
#[inline]
pub fn process_batch_each<F: FrameBuf>(
    fwd: &Forwarder,
    enc: &Encapsulator,
    frames: &mut [F],
    tally: &impl Tally,
    scratch: &mut BatchScratch,
    mut each: impl FnMut(usize, &Verdict),
) {
    let mut c = Outcomes::default();
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
    tally.add_batch(frames.len(), &c);
}

/// A batch's outcomes other than forwarding; forwarded frames are the
/// rest of the batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcomes {
    /// Frames that matched no bind.
    pub unmatched: u64,
    /// Matched frames with no route.
    pub route_failed: u64,
    /// Routed frames that could not be encapsulated.
    pub encap_failure: u64,
}

impl Outcomes {
    /// Counts one frame. Only the outcomes other than forwarding are
    /// counted one by one; [`Tally::add_batch`] derives the rest from the
    /// batch size.
    #[inline(always)]
    pub fn count(&mut self, v: &Verdict) {
        match v {
            Verdict::Forward(_) => {}
            Verdict::Unclassified => self.unmatched += 1,
            Verdict::RouteFailed { .. } => self.route_failed += 1,
            Verdict::EncapFailed { .. } => self.encap_failure += 1,
        }
    }
}

/// Where an engine adds up what its batches did (its per-core counters).
pub trait Tally {
    /// Adds a batch of `frames` frames with these outcomes.
    fn add_batch(&self, frames: usize, outcomes: &Outcomes);
}

/// A [`Tally`] for one thread (tools, tests): the frames seen and their
/// outcomes, added up.
#[derive(Debug, Default)]
pub struct Totals {
    frames: std::cell::Cell<u64>,
    outcomes: std::cell::Cell<Outcomes>,
}

impl Totals {
    /// Frames seen.
    pub fn frames(&self) -> u64 {
        self.frames.get()
    }

    /// Their outcomes other than forwarding.
    pub fn outcomes(&self) -> Outcomes {
        self.outcomes.get()
    }

    /// Frames forwarded.
    pub fn forwarded(&self) -> u64 {
        let o = self.outcomes.get();
        self.frames.get() - o.unmatched - o.route_failed - o.encap_failure
    }
}

impl Tally for Totals {
    fn add_batch(&self, frames: usize, outcomes: &Outcomes) {
        self.frames.set(self.frames.get() + frames as u64);
        let mut o = self.outcomes.get();
        o.unmatched += outcomes.unmatched;
        o.route_failed += outcomes.route_failed;
        o.encap_failure += outcomes.encap_failure;
        self.outcomes.set(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableFile;
    use crate::wire::ethernet;
    use glb_testkit::frames::*;
    use glb_testkit::table::{compile, tables_json};

    #[test]
    fn a_frame_in_a_verdict_and_the_output_bytes_out() {
        let bin = compile(&tables_json(&[(
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            r#"{"ip": "10.1.1.1", "proto": "tcp", "port": 80}"#,
            &["192.0.2.1", "192.0.2.2"],
        )]));
        let fwd = Forwarder::new(&TableFile::parse(&bin).unwrap(), Default::default());
        let enc = Encapsulator::new(EncapParams {
            dst_mac: ethernet::Address(GW_MAC),
            src_mac: ethernet::Address::ZERO,
            src_ip: v4("65.65.65.65"),
            udp_checksum: true,
        });
        let input = tcp4("172.16.1.2", 40000, "10.1.1.1", 80);
        let mut frame = OwnedFrame::new(&input, HEADROOM);
        let Verdict::Forward(route) = process_one(&fwd, &enc, &mut frame) else {
            panic!("not forwarded");
        };
        let out = frame.frame();
        assert_eq!(out.len(), 14 + 20 + 8 + 12 + input.len() - 14);
        assert_eq!(out[..6], GW_MAC);
        assert_eq!(out[30..34], route.hops[0].octets());
        assert_eq!(&out[out.len() - (input.len() - 14)..], &input[14..]);

        let mut batch: Vec<OwnedFrame> = [
            input.clone(),
            tcp4("172.16.1.2", 40000, "10.9.9.9", 80),
            input[..40].to_vec(),
        ]
        .iter()
        .map(|f| OwnedFrame::new(f, HEADROOM))
        .collect();
        let totals = Totals::default();
        let mut verdicts = Vec::new();
        process_batch_with(&fwd, &enc, &mut batch, &mut verdicts, &totals);
        assert!(matches!(verdicts[0], Verdict::Forward(_)));
        assert_eq!(verdicts[1], Verdict::Unclassified);
        assert_eq!(verdicts[2], Verdict::RouteFailed { table: 0 });
        assert_eq!(batch[0].frame(), out, "batch and single frame agree");
        assert_eq!((totals.frames(), totals.forwarded()), (3, 1));
        assert_eq!(
            totals.outcomes(),
            Outcomes {
                unmatched: 1,
                route_failed: 1,
                encap_failure: 0
            }
        );
    }
}
