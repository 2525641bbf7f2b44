//! The command line of `glb-director-cli`. It lives in the library so that
//! the manual page (crates/glb-man) is rendered from this one definition.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use glb_core::flowhash::HashFields;
use glb_core::model::Proto;

/// Compile and inspect GLB forwarding tables.
///
/// The director loads a binary forwarding table; operators (and
/// glb-healthcheck's reload command) write JSON. `build-config` turns one
/// into the other exactly as the original GLB compiler does, so directors
/// running either build identical tables.
#[derive(Debug, Parser)]
#[command(name = "glb-director-cli", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile a JSON forwarding table into the binary table the director loads.
    ///
    /// The output is written to a temporary file beside DST, flushed to disk
    /// and renamed into place, so a director reloading at any moment sees
    /// either the old table or the new one. On any error DST is left
    /// untouched and the exit status is non-zero. Warnings (backends without
    /// a "healthy" field, several non-active backends in one table) go to
    /// stderr and do not change the exit status.
    #[command(name = "build-config")]
    BuildConfig {
        /// The JSON forwarding table (e.g. /etc/glb/forwarding_table.checked.json).
        src: PathBuf,
        /// Where to write the binary table (e.g. /etc/glb/forwarding_table.checked.bin).
        dst: PathBuf,
    },
    /// Validate a JSON forwarding table without writing anything.
    ///
    /// Prints warnings to stderr and exits non-zero when the file would be
    /// rejected by build-config.
    Check {
        /// The JSON forwarding table.
        src: PathBuf,
    },
    /// Summarise a compiled binary table: tables, binds, backends and how
    /// rows are spread over them. Keys are never printed.
    Dump {
        /// The binary table (e.g. /etc/glb/forwarding_table.bin).
        table: PathBuf,
        /// Print JSON for scripts instead of the human summary.
        #[arg(long)]
        json: bool,
    },
    /// Show where the director sends a packet: the table and bind it
    /// matches, its hash and row, and the proxies in its GUE hop list.
    ///
    /// Without --dst-ip the packet cannot be classified, so the row and hops
    /// are shown for every table.
    Route(RouteArgs),
}

/// Arguments of `route`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The binary table the director loads.
    pub table: PathBuf,
    /// Client (source) address of the packet.
    #[arg(long)]
    pub src_ip: IpAddr,
    /// Destination (VIP) address; needed to pick the table and bind.
    #[arg(long)]
    pub dst_ip: Option<IpAddr>,
    /// Transport protocol.
    #[arg(long, default_value = "tcp", value_parser = parse_proto)]
    pub proto: Proto,
    /// Client port.
    #[arg(long)]
    pub src_port: Option<u16>,
    /// Destination (VIP) port; needed with --dst-ip to match a bind.
    #[arg(long)]
    pub dst_port: Option<u16>,
    /// Fields hashed, as in director.conf's hash_fields (comma-separated
    /// src_addr, dst_addr, src_port, dst_port).
    #[arg(long, default_value = "src_addr", value_parser = HashFields::parse_list)]
    pub hash_fields: HashFields,
    /// Second field set (director.conf's alt_hash_fields): its two hops are
    /// appended as hops 3 and 4.
    #[arg(long, value_parser = HashFields::parse_list)]
    pub alt_hash_fields: Option<HashFields>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    match s {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        _ => Err(format!("{s:?} is not tcp or udp")),
    }
}
