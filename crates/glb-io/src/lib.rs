//! What the GLB binaries share with their host, written once:
//!
//! * [`atomic_file`] — replacing a file so that readers (and a crash) see
//!   the old contents or the new, never a mix: a temporary file beside
//!   the destination, fsync'd, renamed over it, the directory fsync'd.
//!   The table compiler, the health checker's checked table, the
//!   redirect's stats file and the pcap engine's outputs all go through it.
//! * [`file_id`] — whether two paths are the same file (device and
//!   inode), so no tool writes its output over one of its inputs.
//! * [`statsd`] — packing metric lines into datagrams and sending them
//!   best-effort over UDP.
//! * [`config`] — the one shape of a configuration error (file, key,
//!   problem).
//! * [`notify`] — telling systemd (`Type=notify`) that a daemon is ready,
//!   reloading, stopping or still alive (watchdog).
// The one unsafe block is a test that sets NOTIFY_SOCKET.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod atomic_file;
pub mod config;
pub mod file_id;
pub mod notify;
pub mod statsd;
