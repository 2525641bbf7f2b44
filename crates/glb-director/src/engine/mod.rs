//! Engines: where frames come from and where encapsulated ones go.
//!
//! * [`pcap`] — the offline engine: a capture file in, a capture file and
//!   a verdict per frame out.
//! * [`dpdk`] — the production engine on DPDK ports (the `glb-director`
//!   binary).

pub mod dpdk;
pub mod pcap;
