//! For build scripts: compiles the C BPF programs of a crate with
//! Debian's clang for the `bpf` target, against the libbpf-dev headers.
//!
//! A build script calls [`compile`] with the programs of its `bpf/`
//! folder; each `bpf/NAME.c` becomes `OUT_DIR/NAME.o`. Missing tools fail
//! the build with one message naming the Debian packages to install,
//! rather than with clang's first include error. The headers in
//! `include/` (the map declaration macros) are on every program's
//! include path.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Headers every program may include: `<glb_maps.h>`.
const INCLUDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/include");

/// The compiler a build uses: `$GLB_BPF_CLANG`, else `clang`.
pub fn clang() -> String {
    println!("cargo:rerun-if-env-changed=GLB_BPF_CLANG");
    env::var("GLB_BPF_CLANG").unwrap_or_else(|_| "clang".into())
}

/// Compiles `bpf/NAME.c` for every name into `OUT_DIR/NAME.o` and returns
/// `OUT_DIR`. `user` names the crate in the message about missing tools.
/// Panics (which fails the build with the message) when a tool is missing
/// or a program does not compile.
pub fn compile(user: &str, programs: &[&str]) -> PathBuf {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = clang();
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed={INCLUDE}");
    let multiarch = multiarch();
    check_tools(user, &clang, &multiarch);
    for name in programs {
        let src = format!("bpf/{name}.c");
        let obj = out.join(format!("{name}.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3"])
            .args(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])
            // <linux/bpf.h> includes <asm/types.h>, which lives in the
            // host's multiarch directory; clang's bpf target does not
            // search it.
            .arg(format!("-I/usr/include/{multiarch}"))
            .arg(format!("-I{INCLUDE}"))
            .args(["-c", &src, "-o"])
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| panic!("running {clang}: {e}"));
        if !status.success() {
            panic!("{clang} failed to compile {src} ({status})");
        }
    }
    out
}

fn check_tools(user: &str, clang: &str, multiarch: &str) {
    let mut missing = Vec::new();
    if Command::new(clang).arg("--version").output().is_err() {
        missing.push(format!("clang (no `{clang}` on PATH)"));
    }
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        missing.push("libbpf-dev (no /usr/include/bpf/bpf_helpers.h)".into());
    }
    let asm = format!("/usr/include/{multiarch}/asm/types.h");
    if !Path::new("/usr/include/linux/bpf.h").exists() || !Path::new(&asm).exists() {
        missing.push(format!(
            "linux-libc-dev (no /usr/include/linux/bpf.h or {asm})"
        ));
    }
    if !missing.is_empty() {
        panic!(
            "{user} builds its BPF programs with clang; missing: {}. \
             Install them with: apt-get install clang libbpf-dev linux-libc-dev",
            missing.join(", ")
        );
    }
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
