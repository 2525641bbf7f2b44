//! The source and destination ports that open both TCP and UDP headers —
//! all of the transport header GLB reads.

use super::Result;

/// Length of the port pair.
pub const LEN: usize = 4;

view! {
    /// A view of the first four bytes of a TCP or UDP header.
    Ports {
        /// Source port.
        src_port: u16 = 0,
        /// Destination port.
        dst_port: u16 = 2,
    }
}

fixed_len_view!(Ports, LEN);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn ports() {
        let p = Ports::new_checked(&[0xc0, 0x31, 0x00, 0x50][..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (49201, 80));
        assert_eq!(
            Ports::new_checked(&[0u8; 3][..]).unwrap_err(),
            Error::Truncated
        );
    }
}
