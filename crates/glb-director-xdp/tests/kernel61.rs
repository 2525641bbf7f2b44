//! The programs on Debian 12's own kernel (6.1), glb-redirect's fast
//! path included: this test fetches
//! Debian's linux-image package with `apt-get download`, boots it under
//! QEMU (TCG, no KVM) with an initramfs whose `/init` is this very test
//! binary, and there loads every object — the verifier must accept each —
//! and runs the conformance cases through the director program with
//! BPF_PROG_TEST_RUN, as `conformance.rs` does on the build machine's
//! kernel.
//!
//! Needs qemu-system-x86, cpio and apt (script/test installs the first
//! two). Set GLB_KERNEL61_VMLINUZ to boot a kernel image already at hand.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use glb_director_xdp::objects;

const NAME: &str = "kernel_6_1_accepts_and_runs_the_programs";
/// Set on the guest kernel's command line; the kernel hands it to /init.
const INIT_ENV: &str = "GLB_XDP_KERNEL_CHECK";
const PASS: &str = "GLB-XDP-KERNEL-CHECK PASS";
const FAIL: &str = "GLB-XDP-KERNEL-CHECK FAIL";
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);

fn main() {
    if std::env::var_os(INIT_ENV).is_some() && std::process::id() == 1 {
        guest();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    if !args.is_empty() && !args.iter().any(|a| NAME.contains(a.as_str())) {
        println!(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n"
        );
        return;
    }
    println!("\nrunning 1 test");
    let start = Instant::now();
    let result = std::panic::catch_unwind(host);
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            println!("test {NAME} ... ok\n");
            println!(
                "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {secs:.2}s\n"
            );
        }
        Err(_) => {
            println!("test {NAME} ... FAILED\n");
            println!(
                "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in {secs:.2}s\n"
            );
            std::process::exit(101);
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is missing: apt-get install {package}");
}

/// Debian 12's newest 6.1 kernel image, downloaded and unpacked in `dir`.
fn fetch_kernel(dir: &Path) -> PathBuf {
    if let Some(k) = std::env::var_os("GLB_KERNEL61_VMLINUZ") {
        return PathBuf::from(k);
    }
    let list = run(Command::new("apt-cache").args([
        "search",
        "--names-only",
        r"^linux-image-6\.1\.0-[0-9]+-amd64$",
    ]));
    let newest = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .max_by_key(|n| {
            n.trim_start_matches("linux-image-6.1.0-")
                .trim_end_matches("-amd64")
                .parse::<u32>()
                .unwrap_or(0)
        })
        .unwrap_or_else(|| panic!("apt knows no linux-image-6.1.0-N-amd64 (run apt-get update)"))
        .to_owned();
    run(Command::new("apt-get")
        .args(["download", "-q", &newest])
        .current_dir(dir));
    let deb = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("apt-get download wrote no .deb");
    let unpacked = dir.join("kernel");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    std::fs::read_dir(unpacked.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .expect("no vmlinuz in the package")
}

/// Copies `src` to the same absolute path under `root`.
fn place(root: &Path, src: &Path) {
    let dst = root.join(src.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let d = dst.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &d);
        } else {
            std::fs::copy(&p, &d).unwrap();
        }
    }
}

/// An initramfs: this binary as /init, the shared libraries it needs, the
/// BPF objects where the build put them, and the conformance cases.
fn initramfs(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let exe = std::env::current_exe().unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&exe, root.join("init")).unwrap();
    for line in run(Command::new("ldd").arg(&exe)).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = line
            .split("=>")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            place(&root, Path::new(p));
        }
    }
    for obj in ["glb_encap.o", "tailcall.o", "passer.o", "reflector.o"] {
        place(&root, &objects::built(obj));
    }
    copy_tree(
        &glb_testkit::conformance::dir().join("pcap"),
        &root.join("conformance/pcap"),
    );
    for d in ["proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    run(Command::new("mknod")
        .arg(root.join("dev/console"))
        .args(["c", "5", "1"]));
    let image = dir.join("initrd.cpio");
    let cpio = std::fs::File::create(&image).unwrap();
    let status = Command::new("sh")
        .args([
            "-c",
            "find . -print0 | cpio --null --create --format=newc --quiet",
        ])
        .current_dir(&root)
        .stdout(cpio)
        .status()
        .unwrap();
    assert!(status.success(), "cpio failed");
    image
}

fn host() {
    require("qemu-system-x86_64", "qemu-system-x86");
    require("cpio", "cpio");
    let dir = tempfile::Builder::new()
        .prefix("glb-xdp-kernel61.")
        .tempdir()
        .unwrap();
    let kernel = fetch_kernel(dir.path());
    let initrd = initramfs(dir.path());
    let console = dir.path().join("console.log");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet {INIT_ENV}=1 GLB_CONFORMANCE_DIR=/conformance"
        ))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&console).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut log = String::new();
    std::fs::File::open(&console)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let log = log.replace('\r', "");
    // The guest's lines may follow kernel messages on the same line.
    let ours: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            l.find("guest: ")
                .or_else(|| l.find("GLB-XDP"))
                .map(|i| &l[i..])
        })
        .collect();
    for line in &ours {
        eprintln!("{line}");
    }
    assert!(
        status.is_some(),
        "the guest did not finish within {BOOT_TIMEOUT:?}:\n{log}"
    );
    assert!(
        !log.contains(FAIL),
        "the check failed on the guest kernel:\n{log}"
    );
    assert!(
        log.contains(PASS),
        "the guest never reported a result:\n{log}"
    );
    let release = ours
        .iter()
        .find_map(|l| l.strip_prefix("guest: kernel "))
        .unwrap_or_default();
    assert!(
        release.starts_with("6.1."),
        "the guest ran kernel {release:?}, not 6.1"
    );
    eprintln!("{} of Debian's kernel {release}", kernel.display());
}

/// PID 1 in the guest: mount what aya reads, check, power off.
fn guest() -> ! {
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("guest: kernel {}", release.trim());
    let result = std::panic::catch_unwind(|| {
        let mut lines = Vec::new();
        for obj in ["tailcall.o", "passer.o", "reflector.o"] {
            let mut e = aya::Ebpf::load_file(objects::built(obj))
                .unwrap_or_else(|e| panic!("{obj}: {}", support::error_chain(&e)));
            for (name, p) in e.programs_mut() {
                let p: &mut aya::programs::Xdp = p.try_into().unwrap();
                p.load()
                    .unwrap_or_else(|e| panic!("{obj} {name}: {}", support::error_chain(&e)));
                lines.push(format!("verifier accepted {obj} ({name})"));
            }
        }
        // glb-redirect's fast path, which Debian 12's proxies run on this
        // kernel too (loaded, not attached: the guest has no modules, and
        // clsact and cls_bpf are modules there).
        let listen = "0.0.0.0:19523".parse().unwrap();
        glb_redirect::fast_path::FastPath::load(listen, &Default::default())
            .unwrap_or_else(|e| panic!("glb-redirect's fast path: {}", support::error_chain(&e)));
        lines.push("verifier accepted glb-redirect's fast path (second_chance.o)".into());
        for case in support::conformance_cases() {
            lines.push(support::check_case(&case).unwrap_or_else(|e| panic!("{e}")));
        }
        lines
    });
    match result {
        Ok(lines) => {
            for l in lines {
                println!("guest: {l}");
            }
            println!("{PASS}");
        }
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("guest: {msg}");
            println!("{FAIL}");
        }
    }
    // SAFETY: sync(2) and reboot(2) take no pointers; PID 1 powering the
    // machine off is the end of the guest.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    std::process::exit(0)
}

fn mount(src: &str, target: &str, fstype: &str) {
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (s, t, f) = (c(src), c(target), c(fstype));
    // SAFETY: the three strings are NUL-terminated and outlive the call;
    // no mount data is passed.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        println!(
            "guest: mounting {target}: {}",
            std::io::Error::last_os_error()
        );
    }
}
