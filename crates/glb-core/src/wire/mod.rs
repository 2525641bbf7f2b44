//! Typed views over packet bytes, in the style of smoltcp's `wire` module.
//!
//! Every header has a view `Foo<T: AsRef<[u8]>>` that wraps a buffer. A
//! view made with `new_checked` has had its lengths verified once, so its
//! accessors never panic and never read past the buffer, whatever bytes
//! it holds. `new_unchecked` skips the check for callers that have already
//! made it; on such a view an accessor may panic if the buffer is short.
//!
//! Views never copy: reading a field decodes it from the buffer in place,
//! and the setters of a view over `&mut [u8]` write in place. That is what
//! lets the director prepend its encapsulation into a frame's headroom
//! without moving the packet.
//!
//! * [`ethernet`] — Ethernet II frames and MAC addresses.
//! * [`ipv4`] — IPv4 headers.
//! * [`ipv6`] — IPv6 fixed headers.
//! * [`ports`] — the source/destination port pair that starts TCP and UDP headers.
//! * [`tcp`] — TCP headers (ports, sequence numbers, flags).
//! * [`udp`] — UDP headers.
//! * [`icmp`] — ICMPv4 and ICMPv6 messages, including the quoted packet of errors.
//! * [`ip`] — the walk from an IP header to its transport or quoted packet.
//! * [`gue`] — Generic UDP Encapsulation with GLB's private data (hop list).
//! * [`checksum`] — the Internet checksum.

/// Declares a view type over a byte buffer with what every view shares:
/// the struct, `new_unchecked`, `into_inner`, and an accessor (and, where
/// a setter is named, a setter on a mutable buffer) for each fixed-offset
/// field, so each module only writes its checks and its derived fields.
///
/// A field is `getter / setter: Type = offset` (the setter is optional);
/// `Type` is any [`Field`]: `u8`, big-endian `u16`/`u32`, IPv4/IPv6 or MAC
/// addresses. Accessors index the buffer, so on an unchecked view that
/// is too short they panic like every other accessor.
macro_rules! view {
    (
        $(#[$meta:meta])* $name:ident {
            $( $(#[$fmeta:meta])* $get:ident $(/ $set:ident)? : $ty:ty = $at:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer without checking it; accessors may panic
            /// when it is shorter than the header.
            #[inline]
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// The wrapped buffer.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The one order of every checked constructor: the buffer
            /// holds `min` bytes, so the fixed fields can be read; `rules`
            /// accept them and give the length the header announces; the
            /// buffer holds that too.
            #[inline(always)]
            fn checked(
                buffer: T,
                min: usize,
                rules: impl FnOnce(&Self) -> $crate::wire::Result<usize>,
            ) -> $crate::wire::Result<Self> {
                let view = $name { buffer };
                $crate::wire::check_len(view.buffer.as_ref(), min)?;
                let announced = rules(&view)?;
                $crate::wire::check_len(view.buffer.as_ref(), announced)?;
                Ok(view)
            }

            $(
                $(#[$fmeta])*
                #[inline]
                pub fn $get(&self) -> $ty {
                    <$ty as $crate::wire::Field>::read(self.buffer.as_ref(), $at)
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            $($(
                #[doc = concat!("Sets [`", stringify!($get), "`](Self::", stringify!($get), ").")]
                #[inline]
                pub fn $set(&mut self, v: $ty) {
                    <$ty as $crate::wire::Field>::write(v, self.buffer.as_mut(), $at)
                }
            )?)*
        }
    };
}

/// For a view whose header has a fixed length: `new_checked` (the buffer
/// holds the header) and, where named, the bytes after the header,
/// borrowed from the buffer and mutable.
macro_rules! fixed_len_view {
    ($name:ident, $len:ident $(, $(#[$rmeta:meta])* $rest:ident / $rest_mut:ident)?) => {
        impl<T: AsRef<[u8]>> $name<T> {
            #[doc = concat!("Wraps a buffer holding at least the header ([`", stringify!($len), "`] bytes).")]
            pub fn new_checked(buffer: T) -> Result<Self> {
                Self::checked(buffer, $len, |_| Ok($len))
            }
        }

        $(
            impl<'a, T: AsRef<[u8]> + ?Sized> $name<&'a T> {
                $(#[$rmeta])*
                pub fn $rest(&self) -> &'a [u8] {
                    &T::as_ref(self.buffer)[$len..]
                }
            }

            impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
                #[doc = concat!("[`Self::", stringify!($rest), "`], mutable.")]
                pub fn $rest_mut(&mut self) -> &mut [u8] {
                    &mut self.buffer.as_mut()[$len..]
                }
            }
        )?
    };
}

pub mod checksum;
pub mod ethernet;
pub mod gue;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod ports;
pub mod tcp;
pub mod udp;

/// Why a buffer could not be viewed as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header (or the length it announces) does.
    #[error("truncated")]
    Truncated,
    /// A field holds a value the format does not allow.
    #[error("malformed: {0}")]
    Malformed(Malformed),
}

/// Which rule a header breaks, so callers can tell one from another
/// (glb-redirect counts some of them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The IP version nibble is not the one the view reads.
    #[error("IP version is not {0}")]
    IpVersion(u8),
    /// An IPv4 header length (IHL) below 5 words.
    #[error("IPv4 IHL below 5")]
    Ipv4HeaderLen,
    /// An IPv4 total length shorter than the header.
    #[error("IPv4 total length shorter than its header")]
    Ipv4TotalLen,
    /// A UDP length shorter than the UDP header.
    #[error("UDP length shorter than its header")]
    UdpLen,
    /// A TCP data offset below 5 words.
    #[error("TCP data offset below 5")]
    TcpHeaderLen,
    /// A GUE version other than 0.
    #[error("GUE version is not 0")]
    GueVersion,
    /// A GUE control message (C bit set).
    #[error("GUE control message")]
    GueControl,
    /// A GUE header without GLB's private data word (`hlen` 0).
    #[error("GUE header carries no GLB private data")]
    GueNoPrivateData,
    /// `hlen` is not `hop_count + 1`.
    #[error("GUE hlen does not equal hop count + 1")]
    GueHopCount,
    /// A GUE inner protocol other than IPv4 (4) or IPv6 (41).
    #[error("GUE inner protocol is neither IPv4 nor IPv6")]
    GueProtocol,
    /// More hops than a GUE header can list.
    #[error("more than 30 GUE hops")]
    GueTooManyHops,
}

/// Result of a view constructor.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers used by GLB.
pub mod ip_proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP (GUE protocol for an inner IPv4 packet).
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP (GUE protocol for an inner IPv6 packet).
    pub const IPV6: u8 = 41;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// Copies `N` bytes starting at `at`; the caller has checked the bounds.
#[inline(always)]
fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// A value a view reads from, and writes to, a fixed offset of its
/// buffer, in network byte order. The caller has checked the bounds.
trait Field: Sized {
    fn read(b: &[u8], at: usize) -> Self;
    fn write(self, b: &mut [u8], at: usize);
}

/// Implements [`Field`] for a type made from, and turned into, `N` bytes.
macro_rules! field {
    ($($ty:ty: $n:literal, $from:expr, $to:expr;)*) => {$(
        impl Field for $ty {
            #[inline(always)]
            fn read(b: &[u8], at: usize) -> Self {
                ($from)(array::<$n>(b, at))
            }

            #[inline(always)]
            fn write(self, b: &mut [u8], at: usize) {
                b[at..at + $n].copy_from_slice(&($to)(self));
            }
        }
    )*};
}

field! {
    u8: 1, u8::from_be_bytes, u8::to_be_bytes;
    u16: 2, u16::from_be_bytes, u16::to_be_bytes;
    u32: 4, u32::from_be_bytes, u32::to_be_bytes;
    std::net::Ipv4Addr: 4, std::net::Ipv4Addr::from, |a: std::net::Ipv4Addr| a.octets();
    std::net::Ipv6Addr: 16, std::net::Ipv6Addr::from, |a: std::net::Ipv6Addr| a.octets();
    ethernet::Address: 6, ethernet::Address, |a: ethernet::Address| a.0;
}

/// Fails with [`Error::Truncated`] when `b` is shorter than `len`.
#[inline(always)]
fn check_len(b: &[u8], len: usize) -> Result<()> {
    (b.len() >= len).then_some(()).ok_or(Error::Truncated)
}

/// Fails with `why` unless the header keeps the rule `ok` tests.
#[inline(always)]
fn ensure(ok: bool, why: Malformed) -> Result<()> {
    ok.then_some(()).ok_or(Error::Malformed(why))
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// Reads every field of every view a buffer passes the checks for.
    fn read_all(b: &[u8]) {
        if let Ok(p) = ipv4::Packet::new_header_checked(b) {
            let _ = (p.total_len(), p.ident(), p.frag_offset());
            let _ = (p.src_addr(), p.dst_addr(), p.payload().len());
            let _ = (p.is_complete(), p.verify_checksum());
        }
        if let Ok(p) = ipv6::Packet::new_header_checked(b) {
            let _ = (p.flow_label(), p.src_addr(), p.dst_addr());
            let _ = (p.payload().len(), p.is_complete());
        }
        if let Ok(p) = gue::Packet::new_checked(b) {
            let _ = (p.protocol(), p.hlen(), p.payload().len(), p.check_glb());
            if p.hlen() >= 1 {
                let _ = (p.next_hop(), p.hop_count(), p.private_type());
                assert!(p.hops().count() < usize::from(p.hlen()));
                for i in 0..64 {
                    let _ = p.hop(i);
                }
            }
        }
        if let Ok(p) = udp::Packet::new_checked(b) {
            let _ = (p.src_port(), p.dst_port(), p.checksum(), p.payload().len());
        }
        if let Ok(p) = icmp::Packet::new_checked(b) {
            let _ = (p.msg_type(), p.echo_ident(), p.rest_of_header());
            let _ = p.data().len();
        }
        if let Ok(f) = ethernet::Frame::new_checked(b) {
            let _ = (f.dst_addr(), f.ethertype(), f.payload().len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Checked views never panic, whatever the bytes.
        #[test]
        fn views_never_panic(b in proptest::collection::vec(any::<u8>(), 0..96)) {
            read_all(&b);
            for n in 0..b.len() {
                read_all(&b[..n]);
            }
        }
    }
}
