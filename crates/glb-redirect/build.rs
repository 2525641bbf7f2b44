//! Compiles the fast path's BPF program (bpf/second_chance.c, with
//! glb-bpf-build); src/fast_path.rs embeds the object.

fn main() {
    let out = glb_bpf_build::compile("glb-redirect", &["second_chance"]);
    println!("cargo:rustc-env=GLB_REDIRECT_BPF_DIR={}", out.display());
}
