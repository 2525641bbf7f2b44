//! Shared logic of the GLB suite.
//!
//! Everything here is pure: callers hand in bytes or text and get values
//! back. The director, the table compiler, the health checker and the proxy
//! daemon all build on these pieces so that every component agrees, bit for
//! bit, on what a forwarding table means and what a packet on the wire
//! looks like.
//!
//! * [`model`] — the forwarding-table JSON (`forwarding_table.json`) with
//!   validation that names the table, entry and field at fault.
//! * [`json`] — the one front end for JSON files operators write: syntax,
//!   byte order marks and comments reported as what they are.
//! * [`table`] — the binary table the director loads: a writer and a
//!   validating zero-copy reader.
//! * [`rendezvous`] — generation of the 65,536-row primary/secondary table.
//! * [`hash`] — SipHash-2-4 keyed hashing and the secret key type.
//! * The director's packet path, one module per step in SPEC order:
//!   [`inspect`] (one pass over the frame), [`classify`] (bind matching),
//!   [`flowhash`], [`route`] (the row's hops over a loaded table) and
//!   [`encap`] (GUE encapsulation in place); [`batch`] routes a burst at
//!   once, and [`path`] runs a frame through all of it to its verdict.
//! * [`prefetch`] — the cache hint the batch path issues for table rows.
//! * [`wire`] — typed views over packet bytes (Ethernet, IPv4/IPv6,
//!   ports, ICMP, UDP, GUE with GLB's hop list) and the Internet checksum.
// Safe code only, but for one CPU hint in `prefetch`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod classify;
pub mod encap;
pub mod flowhash;
pub mod hash;
pub mod inspect;
pub mod json;
pub mod model;
pub mod path;
pub mod prefetch;
pub mod rendezvous;
pub mod route;
pub mod table;
pub mod wire;

pub use hash::Key16;
pub use model::{ForwardingTables, ModelError};
