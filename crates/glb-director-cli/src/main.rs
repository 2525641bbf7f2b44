//! `glb-director-cli`: compiles forwarding tables for the director and
//! answers questions about compiled ones.

mod compile;
mod dump;
mod route;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Compile and inspect GLB forwarding tables.
///
/// The director loads a binary forwarding table; operators (and
/// glb-healthcheck's reload command) write JSON. `build-config` turns one
/// into the other exactly as the original GLB compiler does, so directors
/// running either build identical tables.
#[derive(Debug, Parser)]
#[command(name = "glb-director-cli", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Route(route::RouteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildConfig { src, dst } => compile::build_config(&src, &dst),
        Command::Check { src } => compile::check(&src),
        Command::Dump { table, json } => dump::run(&table, json),
        Command::Route(args) => route::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glb-director-cli: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
