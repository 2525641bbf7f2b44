//! The system-call edge: batched datagram I/O (`recvmmsg`/`sendmmsg`),
//! socket options `socket2` does not cover, interface flags, local
//! addresses and signal waiting. Every `unsafe` block of the daemon lives
//! here or in [`crate::tun`].

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

/// Room for the control messages we ask for (`IP_PKTINFO`, `IP_TOS`,
/// `IP_TTL`: 32 + 24 + 24 bytes with alignment).
const CTRL_LEN: usize = 128;

/// One datagram's control-message space, aligned as `cmsghdr` needs.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Ctrl([u8; CTRL_LEN]);

/// What arrived with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Payload length (bytes actually stored).
    pub len: usize,
    /// The datagram did not fit its slot and was cut.
    pub truncated: bool,
    /// Sender (IPv4 only; `None` for other families).
    pub src: Option<SocketAddrV4>,
    /// The packet's destination address (`IP_PKTINFO`), if reported.
    pub dst: Option<Ipv4Addr>,
    /// The packet's TOS byte (`IP_RECVTOS`), if reported.
    pub tos: Option<u8>,
    /// The packet's TTL (`IP_RECVTTL`), if reported.
    pub ttl: Option<u8>,
}

const EMPTY_META: RecvMeta = RecvMeta {
    len: 0,
    truncated: false,
    src: None,
    dst: None,
    tos: None,
    ttl: None,
};

/// One datagram to send from a [`Ring`] slot: `len` bytes starting
/// `start` bytes into slot `slot` (the slot's headroom counts), to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendItem {
    /// Slot index.
    pub slot: usize,
    /// Offset of the first byte from the slot's start.
    pub start: usize,
    /// Bytes to send.
    pub len: usize,
    /// Destination.
    pub to: SocketAddrV4,
}

/// A fixed set of equal slots for batched receives. Each slot is
/// `headroom` free bytes followed by room for one datagram, so a
/// received payload can be prefixed with new headers in place and sent
/// on without copying.
pub struct Ring {
    data: Vec<u8>,
    slot: usize,
    headroom: usize,
    ctrl: Vec<Ctrl>,
    names: Vec<libc::sockaddr_in>,
    iov: Vec<libc::iovec>,
    hdr: Vec<libc::mmsghdr>,
    /// Per-slot results of the last [`Ring::recv`].
    pub meta: Vec<RecvMeta>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("slots", &self.meta.len())
            .field("slot", &self.slot)
            .field("headroom", &self.headroom)
            .finish()
    }
}

fn zeroed_sockaddr_in() -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: 0,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    }
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data (pointers, lengths, flags) for
    // which all-zero bytes are a valid value (null pointers, zero lengths).
    unsafe { mem::zeroed() }
}

impl Ring {
    /// `n` slots of `headroom + payload` bytes each.
    pub fn new(n: usize, payload: usize, headroom: usize) -> Ring {
        let slot = headroom + payload;
        Ring {
            data: vec![0u8; n * slot],
            slot,
            headroom,
            ctrl: vec![Ctrl([0; CTRL_LEN]); n],
            names: vec![zeroed_sockaddr_in(); n],
            iov: Vec::with_capacity(n),
            hdr: Vec::with_capacity(n),
            meta: vec![EMPTY_META; n],
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether the ring has no slots.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// The payload received into slot `i`.
    pub fn payload(&self, i: usize) -> &[u8] {
        let start = i * self.slot + self.headroom;
        &self.data[start..start + self.meta[i].len.min(self.slot - self.headroom)]
    }

    /// Slot `i` from its start: the headroom followed by `len` payload
    /// bytes.
    pub fn frame_mut(&mut self, i: usize, len: usize) -> &mut [u8] {
        let start = i * self.slot;
        let end = start + (self.headroom + len).min(self.slot);
        &mut self.data[start..end]
    }

    /// Receives up to [`Ring::len`] datagrams with one `recvmmsg` call
    /// into the slots' payload areas. Blocks for the first one (subject
    /// to the socket's receive timeout) unless `flags` holds
    /// `MSG_DONTWAIT`; never waits for more than the first.
    pub fn recv(&mut self, fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<usize> {
        let n = self.len();
        let base = self.data.as_mut_ptr();
        let ctrl = self.ctrl.as_mut_ptr();
        let names = self.names.as_mut_ptr();
        self.iov.clear();
        for i in 0..n {
            self.iov.push(libc::iovec {
                iov_base: base.wrapping_add(i * self.slot + self.headroom).cast(),
                iov_len: self.slot - self.headroom,
            });
        }
        let iov = self.iov.as_mut_ptr();
        self.hdr.clear();
        for i in 0..n {
            let mut h = empty_mmsghdr();
            h.msg_hdr.msg_name = names.wrapping_add(i).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = iov.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ctrl.wrapping_add(i).cast();
            h.msg_hdr.msg_controllen = CTRL_LEN as _;
            self.hdr.push(h);
        }
        // SAFETY: every pointer in `hdr` points into `data`, `ctrl`,
        // `names` and `iov`, which `self` owns and keeps alive and
        // unmoved for the call; the lengths given match those buffers.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdr.as_mut_ptr(),
                n as libc::c_uint,
                flags | libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = r as usize;
        for i in 0..got {
            let h = &self.hdr[i];
            // The field is usize on glibc but socklen_t on musl.
            #[allow(clippy::unnecessary_cast)]
            let ctrl_len = (h.msg_hdr.msg_controllen as usize).min(CTRL_LEN);
            let mut m = RecvMeta {
                len: h.msg_len as usize,
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                src: None,
                dst: None,
                tos: None,
                ttl: None,
            };
            let name = &self.names[i];
            if h.msg_hdr.msg_namelen as usize >= mem::size_of::<libc::sockaddr_in>()
                && name.sin_family == libc::AF_INET as libc::sa_family_t
            {
                m.src = Some(SocketAddrV4::new(
                    Ipv4Addr::from(name.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(name.sin_port),
                ));
            }
            parse_cmsgs(&self.ctrl[i].0[..ctrl_len], &mut m);
            self.meta[i] = m;
        }
        Ok(got)
    }

    /// Sends `items` with as few `sendmmsg` calls as possible. Returns
    /// how many were sent, how many failed and the first error met; a
    /// message the kernel refuses is skipped and the rest still go out.
    pub fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        items: &[SendItem],
    ) -> (usize, usize, Option<io::Error>) {
        let base = self.data.as_mut_ptr();
        let mut dests: Vec<libc::sockaddr_in> = items.iter().map(|it| sockaddr_in(it.to)).collect();
        let dp = dests.as_mut_ptr();
        self.iov.clear();
        for it in items {
            // Clamp to the slot so a bad item can never reach past it.
            let start = it.start.min(self.slot);
            self.iov.push(libc::iovec {
                iov_base: base.wrapping_add(it.slot * self.slot + start).cast(),
                iov_len: it.len.min(self.slot - start),
            });
        }
        let iov = self.iov.as_mut_ptr();
        self.hdr.clear();
        for i in 0..items.len() {
            let mut h = empty_mmsghdr();
            h.msg_hdr.msg_name = dp.wrapping_add(i).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = iov.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            self.hdr.push(h);
        }
        let (mut sent, mut failed, mut first_err) = (0, 0, None);
        let mut at = 0;
        while at < items.len() {
            let rest = &mut self.hdr[at..];
            // SAFETY: the headers point into `data`, `dests` and `iov`,
            // all alive and unmoved until this function returns; `rest`
            // holds exactly `rest.len()` initialised headers.
            let r = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                sent += r as usize;
                at += r as usize;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                failed += 1;
                at += 1;
                first_err.get_or_insert(e);
            }
        }
        drop(dests);
        (sent, failed, first_err)
    }
}

/// Reads the IPv4 control messages we enabled from a control buffer.
fn parse_cmsgs(mut b: &[u8], m: &mut RecvMeta) {
    let hdr_len = mem::size_of::<libc::cmsghdr>();
    let align = mem::size_of::<usize>();
    while b.len() >= hdr_len {
        let mut len_bytes = [0u8; mem::size_of::<usize>()];
        len_bytes.copy_from_slice(&b[..align]);
        let len = usize::from_ne_bytes(len_bytes);
        let level = i32::from_ne_bytes([b[align], b[align + 1], b[align + 2], b[align + 3]]);
        let ty = i32::from_ne_bytes([b[align + 4], b[align + 5], b[align + 6], b[align + 7]]);
        if len < hdr_len || len > b.len() {
            return;
        }
        let data = &b[hdr_len..len];
        if level == libc::IPPROTO_IP {
            match ty {
                // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
                libc::IP_PKTINFO if data.len() >= 12 => {
                    m.dst = Some(Ipv4Addr::new(data[8], data[9], data[10], data[11]));
                }
                libc::IP_TOS if !data.is_empty() => m.tos = Some(data[0]),
                libc::IP_TTL if data.len() >= 4 => {
                    let ttl = i32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
                    m.ttl = u8::try_from(ttl).ok();
                }
                _ => {}
            }
        }
        let next = len.div_ceil(align) * align;
        if next >= b.len() {
            return;
        }
        b = &b[next..];
    }
}

/// The process at the other end of a connected Unix socket (`SO_PEERCRED`).
pub fn peer_pid(fd: BorrowedFd<'_>) -> io::Result<i32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `cred`, which lives
    // for the call; `len` is updated in place.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(cred.pid)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an integer socket option.
pub fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a c_int that lives for the call, and its
    // size is passed alongside.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A raw netlink socket of `protocol` (named `name` in errors) whose
/// receive buffer holds at least `rcvbuf` bytes: forced past the system
/// limit where we may (`SO_RCVBUFFORCE`), else as large as it allows.
pub fn netlink_socket(
    protocol: libc::c_int,
    name: &str,
    rcvbuf: libc::c_int,
) -> io::Result<socket2::Socket> {
    let sock = socket2::Socket::new(
        socket2::Domain::from(libc::AF_NETLINK),
        socket2::Type::RAW,
        Some(socket2::Protocol::from(protocol)),
    )
    .map_err(|e| io::Error::new(e.kind(), format!("cannot open {name}: {e}")))?;
    if setsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, rcvbuf).is_err() {
        let _ = sock.set_recv_buffer_size(rcvbuf as usize);
    }
    Ok(sock)
}

/// An `ifreq` naming `name` (at most 15 bytes).
pub(crate) fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1 to 15 bytes without NUL"),
        ));
    }
    // SAFETY: ifreq is a C struct of a name array and a union of plain
    // integers and addresses; all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// Brings interface `name` up (`ip link set NAME up`).
pub fn set_link_up(name: &str) -> io::Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let mut ifr = ifreq_for(name)?;
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of the
    // ifreq we own for the duration of the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags member.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS only reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The IPv4 addresses configured on this host's interfaces (in this
/// network namespace).
pub fn local_ipv4_addrs() -> io::Result<Vec<Ipv4Addr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs stores a list it allocates in `head`; we free it
    // below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid
        // until freeifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family field is
            // always readable.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: the family says this sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    Ok(out)
}

/// The signals the daemon handles itself: stop on INT/TERM, ignore HUP
/// (nothing to reload).
pub struct Signals {
    set: libc::sigset_t,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and the
    /// threads it starts afterwards), so they can be taken with
    /// [`Signals::wait`].
    pub fn block() -> io::Result<Signals> {
        // SAFETY: sigset_t is an integer array; all zeroes is a valid
        // value, and sigemptyset initialises it properly anyway.
        let mut set: libc::sigset_t = unsafe { mem::zeroed() };
        // SAFETY: the set is ours; the sig* functions only touch it, and
        // pthread_sigmask reads it and the calling thread's mask.
        let r = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(Signals { set })
    }

    /// Waits up to `timeout` for one of the blocked signals; returns it.
    pub fn wait(&self, timeout: Duration) -> Option<libc::c_int> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: the set and timespec live for the call; no siginfo is
        // requested.
        let r = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (r > 0).then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn cmsg_parser_reads_pktinfo_tos_ttl_and_stops_on_garbage() {
        let mut b = Vec::new();
        let push = |b: &mut Vec<u8>, level: i32, ty: i32, data: &[u8]| {
            let len = 16 + data.len();
            b.extend_from_slice(&(len as u64).to_ne_bytes());
            b.extend_from_slice(&level.to_ne_bytes());
            b.extend_from_slice(&ty.to_ne_bytes());
            b.extend_from_slice(data);
            while b.len() % 8 != 0 {
                b.push(0);
            }
        };
        push(
            &mut b,
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &[2, 0, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9],
        );
        push(&mut b, libc::IPPROTO_IP, libc::IP_TOS, &[0x28]);
        push(&mut b, libc::IPPROTO_IP, libc::IP_TTL, &63i32.to_ne_bytes());
        let mut m = EMPTY_META;
        parse_cmsgs(&b, &mut m);
        assert_eq!(m.dst, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(m.tos, Some(0x28));
        assert_eq!(m.ttl, Some(63));
        let mut m = EMPTY_META;
        parse_cmsgs(&[0xff; 40], &mut m);
        parse_cmsgs(&[1, 0, 0], &mut m);
        assert_eq!(m, EMPTY_META);
    }

    #[test]
    fn ring_receives_and_sends_batches_over_loopback() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        setsockopt_int(rx.as_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1).unwrap();
        setsockopt_int(rx.as_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1).unwrap();
        let to = rx.local_addr().unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 10][..usize::from(i) + 1], to).unwrap();
        }
        let mut ring = Ring::new(8, 64, 4);
        let mut got = 0;
        while got < 5 {
            let n = ring.recv(rx.as_fd(), 0).unwrap();
            for i in 0..n {
                let k = got + i;
                assert_eq!(ring.payload(i), &[k as u8; 10][..k + 1]);
                assert_eq!(ring.meta[i].dst, Some(Ipv4Addr::LOCALHOST));
                assert_eq!(ring.meta[i].ttl, Some(64));
                let from = ring.meta[i].src.unwrap();
                assert_eq!(std::net::SocketAddr::V4(from), tx.local_addr().unwrap());
            }
            got += n;
        }
        // Send two slots' frames (headroom included) back to `tx`.
        let back = match tx.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        ring.frame_mut(0, 1)[..4].copy_from_slice(b"head");
        let item = |slot, len| SendItem {
            slot,
            start: 0,
            len,
            to: back,
        };
        let (sent, failed, err) = ring.send(rx.as_fd(), &[item(0, 5), item(1, 6)]);
        assert_eq!((sent, failed), (2, 0), "{err:?}");
        let mut buf = [0u8; 16];
        let n = tx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"head\x00");
        let n = tx.recv(&mut buf).unwrap();
        assert_eq!(n, 6);
    }

    #[test]
    fn local_addresses_include_loopback() {
        assert!(local_ipv4_addrs().unwrap().contains(&Ipv4Addr::LOCALHOST));
    }
}
