//! `BPF_PROG_TEST_RUN`: runs a loaded XDP program on a frame in the
//! kernel, without an interface, and returns its verdict, the frame as
//! the program left it and the time it took. aya 0.13 has no wrapper for
//! this command, so it is the one raw `bpf(2)` call of the crate.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::programs::ProgramFd;

/// XDP verdicts.
pub mod action {
    /// `XDP_ABORTED`.
    pub const ABORTED: u32 = 0;
    /// `XDP_DROP`.
    pub const DROP: u32 = 1;
    /// `XDP_PASS`.
    pub const PASS: u32 = 2;
    /// `XDP_TX`.
    pub const TX: u32 = 3;
    /// `XDP_REDIRECT`.
    pub const REDIRECT: u32 = 4;
}

/// The name of an XDP verdict.
pub fn action_name(a: u32) -> &'static str {
    match a {
        action::ABORTED => "XDP_ABORTED",
        action::DROP => "XDP_DROP",
        action::PASS => "XDP_PASS",
        action::TX => "XDP_TX",
        action::REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}

/// What one test run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The program's return value (an XDP verdict).
    pub action: u32,
    /// The frame after the program ran.
    pub frame: Vec<u8>,
    /// Mean nanoseconds per run, as the kernel measured it.
    pub duration_ns: u32,
}

/// The `test` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Largest frame a run can give back: a page less XDP's head- and
/// tailroom is the most the kernel accepts, and encapsulation adds less
/// than the headroom.
const MAX_OUT: usize = 4096;

/// `struct xdp_md` as a test run's context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES`.
const LIVE_FRAMES: u32 = 1 << 1;

/// Runs `prog` on `frame` `repeat` times (at least once) and returns the
/// outcome. The kernel does not restore the frame between repetitions:
/// a program that changes it (the director does) runs again on its own
/// output, so only one repetition of it means anything.
pub fn run(prog: &ProgramFd, frame: &[u8], repeat: u32) -> io::Result<Outcome> {
    let mut out = vec![0u8; MAX_OUT];
    let mut attr = TestAttr {
        data_size_out: MAX_OUT as u32,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..attr_for(prog, frame)?
    };
    syscall(&mut attr)?;
    out.truncate((attr.data_size_out as usize).min(MAX_OUT));
    Ok(Outcome {
        action: attr.retval,
        frame: out,
        duration_ns: attr.duration,
    })
}

/// Runs `prog` `repeat` times in live-frame mode, as if `frame` had
/// arrived on interface `ifindex` (the loopback device when `None`) each
/// time: frames it sends with XDP_TX really leave by that interface (the
/// program is then a traffic generator; the loopback device drops them).
/// The kernel resets each frame's start and end before a repetition, not
/// its bytes. Returns the mean nanoseconds per run.
pub fn run_live(
    prog: &ProgramFd,
    frame: &[u8],
    ifindex: Option<u32>,
    repeat: u32,
) -> io::Result<u32> {
    let mut ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex: ifindex.unwrap_or(0),
        ..XdpMd::default()
    };
    let mut attr = TestAttr {
        repeat,
        flags: LIVE_FRAMES,
        ctx_in: &mut ctx as *mut XdpMd as u64,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ..attr_for(prog, frame)?
    };
    syscall(&mut attr)?;
    Ok(attr.duration)
}

fn attr_for(prog: &ProgramFd, frame: &[u8]) -> io::Result<TestAttr> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "frame too large");
    Ok(TestAttr {
        prog_fd: u32::try_from(prog.as_fd().as_raw_fd()).map_err(|_| too_big())?,
        data_size_in: u32::try_from(frame.len()).map_err(|_| too_big())?,
        data_in: frame.as_ptr() as u64,
        ..TestAttr::default()
    })
}

fn syscall(attr: &mut TestAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid `bpf_attr.test` for BPF_PROG_TEST_RUN
    // (the size passed is its own, fields not set are zero). Its callers
    // point `data_in` at a live buffer of `data_size_in` bytes, `data_out`
    // (if set) at a live buffer of `data_size_out` bytes and `ctx_in` (if
    // set) at a live `xdp_md` of `ctx_size_in` bytes, all outliving the
    // call; the kernel keeps no pointer after it returns.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
