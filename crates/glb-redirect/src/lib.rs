//! `glb-redirect`: the proxy side of GLB (SPEC §11) as a user-space
//! daemon that works on stock kernels, `fou` module or not.
//!
//! GUE packets from the directors arrive on a UDP socket. Each is
//! validated and classified; packets this host should handle (SYNs, UDP,
//! ICMP, packets of local TCP connections, and anything with no hop left)
//! are decapsulated and written into a TUN device, where the kernel's
//! TCP/IP stack takes them as if they had arrived for the VIP; the rest
//! are sent on to the next hop listed in the GUE header.
//!
//! * [`allow`] — the source and hop allowlists that keep the proxy from
//!   being an open relay.
//! * [`decide`] — validation and the local/forward/drop decision, pure.
//! * [`forward`] — the outer headers of a forwarded packet.
//! * [`sockdiag`] — exact-match TCP socket lookups over `NETLINK_SOCK_DIAG`.
//! * [`worker`] — the batched packet loop.
//! * [`fast_path`] — the optional TC program that forwards second chances
//!   in the kernel, before they reach the socket.
//! * [`nfqueue`] — the alternative front end for kernels with `fou`: the
//!   kernel decapsulates, the daemon gives NFQUEUE verdicts.
//! * [`counters`], [`stats`] — outcome counters, the stats file, statsd.
//! * [`tun`], [`sys`], [`sysctl`] — the operating-system edges.

pub mod allow;
pub mod cli;
pub mod counters;
pub mod decide;
pub mod fast_path;
pub mod forward;
pub mod instance;
pub mod nfqueue;
pub mod sockdiag;
pub mod stats;
pub mod sys;
pub mod sysctl;
pub mod tun;
pub mod worker;
