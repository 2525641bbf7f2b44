//! One libFuzzer binary for every target; `GLB_FUZZ_TARGET` names the one
//! this run drives (script/fuzz sets it).
#![no_main]

use std::sync::OnceLock;

fn target() -> fn(&[u8]) {
    static T: OnceLock<fn(&[u8])> = OnceLock::new();
    *T.get_or_init(|| {
        let name = std::env::var("GLB_FUZZ_TARGET").unwrap_or_default();
        glb_fuzz::target(&name).unwrap_or_else(|| {
            eprintln!("GLB_FUZZ_TARGET={name:?}: not one of {:?}", glb_fuzz::names());
            std::process::exit(2)
        })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| target()(data));
