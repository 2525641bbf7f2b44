//! `glb-director-cli` as a library: only its command-line definition, so
//! that tools such as the manual-page generator (crates/glb-man) render the
//! same options the binary parses.

pub mod cli;
