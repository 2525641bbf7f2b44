//! The GLB test kit: what every crate's tests share, written once and
//! independently of the code under test.
//!
//! * [`conformance`] — finding the shared conformance data (a test that
//!   needs it fails, naming what is missing).
//! * [`frames`] — Ethernet/IPv4/IPv6/TCP/UDP/ICMP frames built byte by byte.
//! * [`checksum`] and [`siphash`] — the Internet checksum and SipHash-2-4
//!   from their specifications, to check the suite's own against.
//! * [`table`] — binary tables compiled for a test and read back by offset.
//! * [`machine`] — the CPU model and vector extension a benchmark ran on.
//! * [`bench`] — script/bench-director's traffic and the burst loop, for
//!   the packet path's benchmarks.
//! * [`netns`] — network namespaces and veth pairs removed on drop, root
//!   checks, commands.
//! * [`notify`] — a stand-in for systemd's notification socket.
//! * [`rawsock`] — raw `AF_PACKET` sockets (the only `unsafe` here).
//! * [`pcap`] — classic pcap files.
//! * [`files`] — what a test left in its folder; FIFOs standing for devices.
//! * [`process`] — running the programs under test.
#![allow(missing_docs)]

pub mod bench;
pub mod checksum;
pub mod conformance;
pub mod files;
pub mod frames;
pub mod machine;
pub mod netns;
pub mod notify;
pub mod pcap;
pub mod process;
pub mod rawsock;
pub mod siphash;
pub mod table;
