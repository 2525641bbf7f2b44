//! Who may use this proxy as a relay: GUE is taken only from listed
//! sources (the directors, and the other proxies that forward second
//! chances), and a second chance goes only to listed hops (the proxies).
//! Without these lists anyone who can reach the GUE port could make the
//! proxy send tunnelled packets to any address.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address or prefix (`192.168.50.6`, `192.168.50.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Prefix {
    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The address as written (host bits included).
    pub fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0-32.
    pub fn prefix_len(self) -> u8 {
        self.len
    }

    /// Whether `a` is inside the prefix.
    pub fn contains(self, a: Ipv4Addr) -> bool {
        (u32::from(a) ^ u32::from(self.addr)) & self.mask() == 0
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4 address or prefix"))?;
        let len = match l {
            None => 32,
            Some(l) => glb_core::model::prefix_len(l, 32)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0-32"))?,
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A list of prefixes; empty means "anyone" (the daemon warns about it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(Vec<Prefix>);

impl List {
    /// A list of these prefixes.
    pub fn new(prefixes: Vec<Prefix>) -> List {
        List(prefixes)
    }

    /// Whether the list restricts anything.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// The prefixes (empty when open).
    pub fn prefixes(&self) -> &[Prefix] {
        &self.0
    }

    /// Whether `a` may pass.
    #[inline]
    pub fn allows(&self, a: Ipv4Addr) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.contains(a))
    }
}

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v: Vec<String> = self.0.iter().map(Prefix::to_string).collect();
        f.write_str(&v.join(","))
    }
}

/// Both lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    /// Outer source addresses GUE is accepted from.
    pub sources: List,
    /// Next hops a second chance may be sent to.
    pub hops: List,
}

/// Parses a comma-separated list of prefixes (one `--allow-*` value).
pub fn parse_list(s: &str) -> Result<Vec<Prefix>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_lists() {
        let l = List::new(parse_list("192.168.50.6, 10.0.0.0/8").unwrap());
        assert!(l.allows("192.168.50.6".parse().unwrap()));
        assert!(!l.allows("192.168.50.7".parse().unwrap()));
        assert!(l.allows("10.200.1.1".parse().unwrap()));
        assert!(List::default().allows("203.0.113.1".parse().unwrap()));
        assert!(List::new(parse_list("0.0.0.0/0").unwrap()).allows("1.2.3.4".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "10.0.0.x",
            "10.0.0.0/",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
        assert_eq!(l.to_string(), "192.168.50.6/32,10.0.0.0/8");
    }
}
