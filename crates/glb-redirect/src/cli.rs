//! The command line of `glb-redirect`, in the library so that the manual
//! page (crates/glb-man) is rendered from this one definition.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use clap::Parser;

/// GLB proxy-side second chance: receives GUE from the directors,
/// delivers packets this host owns to the local stack through a TUN
/// device, and forwards the others to the next hop in the GUE header.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Address and UDP port to receive GUE on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:19523")]
    pub listen: SocketAddrV4,

    /// Name of the TUN device used for local delivery (created at start,
    /// removed at exit).
    #[arg(long, value_name = "NAME", default_value = "glbredirect0")]
    pub tun: String,

    /// Worker threads; each has its own socket (SO_REUSEPORT) and TUN queue.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// Datagrams received, looked up and forwarded per system call.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub batch: u16,

    /// File the counters are written to (replaced atomically).
    #[arg(long, value_name = "FILE", default_value = "/run/glb-redirect/stats")]
    pub stats_file: PathBuf,

    /// How often the stats file is rewritten, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=3_600_000))]
    pub stats_interval_ms: u64,

    /// Also send counter increases to this statsd server every 10 s.
    #[arg(long, value_name = "ADDR:PORT")]
    pub statsd: Option<SocketAddr>,

    /// Metric name prefix for statsd.
    #[arg(long, value_name = "PREFIX", default_value = "glb_redirect")]
    pub statsd_prefix: String,

    /// Leave the rp_filter/accept_local sysctls alone (set them yourself;
    /// see docs/redirect.md).
    #[arg(long)]
    pub no_sysctl: bool,

    /// Send forwarded packets with a zero UDP checksum.
    #[arg(long)]
    pub no_udp_checksum: bool,

    /// How GUE reaches the daemon: `socket` receives it on a UDP socket and
    /// decapsulates into the TUN device (works without any kernel module);
    /// `nfqueue` leaves decapsulation to the kernel's fou module and only
    /// gives verdicts on packets an iptables NFQUEUE rule queues (see
    /// docs/redirect.md).
    #[arg(long, value_enum, default_value_t = Mode::Socket)]
    pub mode: Mode,

    /// First NFQUEUE number (`--mode nfqueue`); worker i serves queue N+i.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub queue_num: u16,

    /// An address that counts as this host when checking the next hop,
    /// besides the interface addresses (repeatable).
    #[arg(long = "local-ip", value_name = "IP")]
    pub local_ips: Vec<Ipv4Addr>,

    /// Accept GUE only from these outer source addresses or prefixes: the
    /// directors and the other proxies (repeatable, or comma-separated).
    /// Anything else is dropped and counted. Without it GUE is accepted
    /// from anywhere, which makes the proxy an open relay (a warning says so).
    #[arg(long = "allow-source", value_name = "PREFIX[,PREFIX...]",
          value_parser = crate::allow::parse_list)]
    pub allow_sources: Vec<Vec<crate::allow::Prefix>>,

    /// Forward second chances in the kernel: attach a TC program to these
    /// interfaces' ingress (the ones GUE arrives on; repeatable, or
    /// comma-separated). It sends on the packets no local connection owns
    /// before they reach the daemon, and leaves every other packet to it.
    /// Needs CAP_BPF besides CAP_NET_ADMIN.
    #[arg(
        long = "fast-path",
        value_name = "IFACE[,IFACE...]",
        value_delimiter = ','
    )]
    pub fast_path: Vec<String>,

    /// Give second chances only to these next hops (the proxies'
    /// addresses or prefixes; repeatable, or comma-separated). A packet
    /// naming any other hop is dropped and counted. Without it any hop
    /// the packet names is used.
    #[arg(long = "allow-hop", value_name = "PREFIX[,PREFIX...]",
          value_parser = crate::allow::parse_list)]
    pub allow_hops: Vec<Vec<crate::allow::Prefix>>,
}

impl Args {
    /// The allowlists given on the command line.
    pub fn allow(&self) -> crate::allow::Allow {
        let flat = |v: &[Vec<crate::allow::Prefix>]| {
            crate::allow::List::new(v.iter().flatten().copied().collect())
        };
        crate::allow::Allow {
            sources: flat(&self.allow_sources),
            hops: flat(&self.allow_hops),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Socket,
    Nfqueue,
}
