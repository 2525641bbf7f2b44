//! The GLB director as an XDP program (SPEC §14).
//!
//! The packet path is C, in `bpf/` (built by `build.rs` with clang for
//! the `bpf` target); this crate loads it with aya and drives it:
//!
//! * [`maps`] — the values the program reads and writes, mirroring
//!   `bpf/glb_xdp.h`.
//! * [`classes`] — binds as a longest-prefix trie plus port intervals.
//! * [`image`] — one generation of the maps, built from a binary
//!   forwarding table and the director's settings.
//! * [`program`] — the loaded program: install a table into the unused
//!   generation and flip to it, read the counters.
//! * [`attach`] — attaching to interfaces and root arrays.
//! * [`cli`] — the command lines of the binaries.
//! * [`engine`] — the director as the shared control plane drives it.
//! * [`test_run`] — `BPF_PROG_TEST_RUN`, for tests and the benchmark.
//! * [`objects`] — where the built programs are.

pub mod attach;
pub mod classes;
pub mod cli;
pub mod engine;
pub mod image;
pub mod maps;
pub mod metrics;
pub mod program;
pub mod test_run;

/// The BPF objects this build compiled.
pub mod objects {
    use std::path::PathBuf;

    /// The build's output directory holding `glb_encap.o`, `tailcall.o`,
    /// `passer.o` and `reflector.o`.
    pub const BUILD_DIR: &str = env!("GLB_XDP_OBJ_DIR");

    /// The path of object `name` (e.g. `"glb_encap.o"`) as built.
    pub fn built(name: &str) -> PathBuf {
        PathBuf::from(BUILD_DIR).join(name)
    }
}

/// An error with its causes, one per line (so a verifier's log, which aya
/// keeps in a cause, is shown).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!("\n  caused by: {c}"));
        cur = c.source();
    }
    s
}
