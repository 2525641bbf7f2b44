//! Compiles the BPF programs in `bpf/` with Debian's clang for the `bpf`
//! target, against the libbpf-dev headers, into `OUT_DIR`; their
//! directory is exported to the crate as `GLB_XDP_OBJ_DIR`.

use std::env;
use std::path::{Path, PathBuf};
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
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("GLB_BPF_CLANG").unwrap_or_else(|_| "clang".into());
    println!("cargo:rerun-if-env-changed=GLB_BPF_CLANG");
    println!("cargo:rerun-if-changed=bpf");

    let mut missing = Vec::new();
    if Command::new(&clang).arg("--version").output().is_err() {
        missing.push(format!("clang (no `{clang}` on PATH)"));
    }
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        missing.push("libbpf-dev (no /usr/include/bpf/bpf_helpers.h)".into());
    }
    // <linux/bpf.h> includes <asm/types.h>, which lives in the host's
    // multiarch directory; clang's bpf target does not search it.
    let multiarch = multiarch();
    let asm = format!("/usr/include/{multiarch}/asm/types.h");
    if !Path::new("/usr/include/linux/bpf.h").exists() || !Path::new(&asm).exists() {
        missing.push(format!(
            "linux-libc-dev (no /usr/include/linux/bpf.h or {asm})"
        ));
    }
    if !missing.is_empty() {
        panic!(
            "glb-director-xdp builds its XDP programs with clang; missing: {}. \
             Install them with: apt-get install clang libbpf-dev linux-libc-dev",
            missing.join(", ")
        );
    }

    for name in PROGRAMS {
        let src = format!("bpf/{name}.c");
        let obj = out.join(format!("{name}.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3"])
            .args(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])
            .arg(format!("-I/usr/include/{multiarch}"))
            .args(["-c", &src, "-o"])
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| panic!("running {clang}: {e}"));
        if !status.success() {
            panic!("{clang} failed to compile {src} ({status})");
        }
    }
    println!("cargo:rustc-env=GLB_XDP_OBJ_DIR={}", out.display());
    write_layout(&clang, &out);
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

/// The Debian multiarch tuple of the target, e.g. `x86_64-linux-gnu`.
fn multiarch() -> String {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    match arch.as_str() {
        "x86" => "i386-linux-gnu".into(),
        "arm" => "arm-linux-gnueabihf".into(),
        a => format!("{a}-linux-gnu"),
    }
}
