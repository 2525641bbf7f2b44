//! Replays every input kept in `corpus/TARGET/` through its target: the
//! seeds script/fuzz starts from and every input that ever failed (a
//! `crash-*` file libFuzzer wrote there). A failing input fails this
//! test until the code it found is fixed.

use std::path::PathBuf;

#[test]
fn every_kept_input_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut replayed = 0;
    for name in glb_fuzz::names() {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target keeps seeds there)", dir.display()));
        let target = glb_fuzz::target(name).expect("a listed target");
        let mut n = 0;
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let ran = std::panic::catch_unwind(|| target(&data));
            assert!(ran.is_ok(), "{name}: {} fails", path.display());
            n += 1;
        }
        assert!(n > 0, "{}: no inputs", dir.display());
        replayed += n;
    }
    assert!(replayed >= glb_fuzz::names().len());
}
