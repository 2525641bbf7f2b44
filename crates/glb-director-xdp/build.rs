//! Compiles the BPF programs in `bpf/` (glb-bpf-build) into `OUT_DIR`;
//! their directory is exported to the crate as `GLB_XDP_OBJ_DIR`.

use std::path::Path;
use std::process::Command;

const PROGRAMS: &[&str] = &[
    "glb_encap",
    "tailcall",
    "passer",
    "reflector",
    "bench_gen",
    "bench_feed",
];

fn main() {
    let out = glb_bpf_build::compile("glb-director-xdp", PROGRAMS);
    println!("cargo:rustc-env=GLB_XDP_OBJ_DIR={}", out.display());
    write_layout(&glb_bpf_build::clang(), &out);
}

/// Compiles and runs `bpf/layout.c` on the host: it prints the sizes of
/// the structs the program and the loader share, which `src/maps.rs`
/// checks its mirrors against at compile time.
fn write_layout(clang: &str, out: &Path) {
    let exe = out.join("layout");
    let status = Command::new(clang)
        .args(["-O0", "-Wall", "-Werror", "bpf/layout.c", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running {clang}: {e}"));
    if !status.success() {
        panic!("{clang} failed to compile bpf/layout.c ({status})");
    }
    let run = Command::new(&exe)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    if !run.status.success() {
        panic!("{} failed ({})", exe.display(), run.status);
    }
    std::fs::write(out.join("layout.rs"), run.stdout).expect("writing layout.rs");
}
