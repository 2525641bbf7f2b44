//! The command lines of `glb-director-xdp` and `xdp-root-shim` (SPEC
//! §14), in the library so the manual pages are rendered from this one
//! definition.

use std::path::PathBuf;

use clap::{ArgGroup, Parser};

/// Default xdpcap hook pin (as the original director).
pub const DEFAULT_XDPCAP_HOOK: &str = "/sys/fs/bpf/glb-director-xdp-capture-hook";
/// Where the package installs the director program.
pub const DEFAULT_BPF_PROGRAM: &str = "/usr/share/glb-director-xdp/glb_encap.o";

/// GLB director as an XDP program: any NIC, no DPDK, no dedicated cores.
///
/// Loads the director program (glb_encap.o) and fills its maps from
/// director.conf and the binary forwarding table, then puts it in
/// service: into slot --xdp-root-idx of each root array an xdp-root-shim
/// pinned (the original director's set-up, so other XDP programs can
/// share the interface), or attached directly to each --interface.
/// Matched packets are GUE-encapsulated in place and sent back out of
/// the interface they arrived on; everything else goes on to the
/// kernel. SIGUSR1 reloads the forwarding table without a moment of
/// mixed tables; SIGINT or SIGTERM takes the program out of service and
/// exits.
#[derive(Debug, Parser)]
#[command(name = "glb-director-xdp", version)]
#[command(group(ArgGroup::new("target").required(true).multiple(true).args(["xdp_root_path", "interface"])))]
pub struct DirectorArgs {
    /// Write the process id to FILE (removed on exit).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// A root shim's program array (pinned in bpffs, e.g.
    /// /sys/fs/bpf/xdp_root_array@eth0); repeat for several interfaces.
    /// A name ending in @IFACE tells the director that interface's MAC.
    #[arg(long, value_name = "PIN")]
    pub xdp_root_path: Vec<PathBuf>,
    /// The slot of the root arrays the director takes.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub xdp_root_idx: u32,
    /// Attach the director directly to IFACE (native XDP; generic XDP,
    /// with a warning, where the driver has none) instead of through a
    /// root shim; repeat for several interfaces.
    #[arg(long, value_name = "IFACE")]
    pub interface: Vec<String>,
    /// director.conf (JSON); the keys of SPEC §5 that shape packets are
    /// used, the DPDK ones (lcores, flow_paths, ...) ignored.
    #[arg(long, value_name = "FILE")]
    pub config_file: PathBuf,
    /// Binary forwarding table (from `glb-director-cli build-config`);
    /// re-read on SIGUSR1.
    #[arg(long, value_name = "FILE")]
    pub forwarding_table: PathBuf,
    /// The director program.
    #[arg(long, value_name = "OBJ", default_value = DEFAULT_BPF_PROGRAM)]
    pub bpf_program: PathBuf,
    /// Pin the program's xdpcap hook (a program array) here, so `xdpcap`
    /// can capture frames with their verdicts; empty to not pin it.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_XDPCAP_HOOK)]
    pub xdpcap_hook_path: std::ffi::OsString,
    /// Forwarding tables the maps are sized for (reloads may not exceed
    /// it); at least 16.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_tables: u32,
    /// Log at debug level (RUST_LOG overrides).
    #[arg(long)]
    pub debug: bool,
}

/// The XDP root shim: shares an interface between XDP programs.
///
/// Attaches TAILCALL_OBJ (tailcall.o) to IFACE and pins its program array
/// of three slots at BPFFS_PIN_PATH. Every frame is tail-called into
/// slots 0, 1 and 2 in turn; a frame no slot takes goes to the kernel.
/// Programs such as glb-director-xdp put themselves into a slot and can
/// be restarted or replaced without detaching anything. Sends READY=1
/// once attached and stays running; SIGINT or SIGTERM detaches and
/// removes the pin.
#[derive(Debug, Parser)]
#[command(name = "xdp-root-shim", version)]
pub struct ShimArgs {
    /// The root program (tailcall.o).
    #[arg(value_name = "TAILCALL_OBJ")]
    pub tailcall_obj: PathBuf,
    /// Where to pin the program array, in a mounted bpffs.
    #[arg(value_name = "BPFFS_PIN_PATH")]
    pub pin_path: PathBuf,
    /// The interface to attach to.
    #[arg(value_name = "IFACE")]
    pub iface: String,
    /// Attach in generic (skb) mode instead of the driver's native mode.
    #[arg(long)]
    pub generic: bool,
    /// Log at debug level (RUST_LOG overrides).
    #[arg(long)]
    pub debug: bool,
}

/// A command line of this crate's binaries.
pub trait Command: Parser {
    /// Whether `--debug` was given.
    fn debug(&self) -> bool;
}

impl Command for DirectorArgs {
    fn debug(&self) -> bool {
        self.debug
    }
}

impl Command for ShimArgs {
    fn debug(&self) -> bool {
        self.debug
    }
}

/// The `main` of this crate's binaries: parses the command line, starts
/// logging, runs `work`, and turns its error into a logged failure exit.
pub fn main<A: Command>(work: impl FnOnce(&A) -> anyhow::Result<()>) -> std::process::ExitCode {
    let args = A::parse();
    glb_director::logging::init(args.debug());
    match work(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
