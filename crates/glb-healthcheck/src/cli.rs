//! The command line of `glb-healthcheck`, in the library so that the
//! manual page (crates/glb-man) is rendered from this one definition.

use std::path::PathBuf;

use clap::Parser;

/// GLB director-to-proxy health checker: probes every proxy of the source
/// forwarding table, writes the checked table and runs the reload command
/// when health changes. SIGHUP reloads the source table.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The configuration file (JSON: forwarding_table.src, forwarding_table.dst,
    /// reload_command).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}
