//! `glb-director-cli`: compiles forwarding tables for the director and
//! answers questions about compiled ones.

mod compile;
mod dump;
mod route;

use std::process::ExitCode;

use clap::Parser;
use glb_director_cli::cli::{Cli, Command};

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
