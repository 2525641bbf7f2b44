//! The machine a benchmark ran on, printed beside its figures: machines
//! of one kind differ from day to day (AVX-512 on some, AVX2 on others),
//! and a figure read without its CPU misleads.

/// The CPU's model name from `/proc/cpuinfo` (`unknown` if unreadable).
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The widest x86 vector extension the CPU offers: `AVX-512`, `AVX2` or
/// `SSE2` (what every x86-64 has); `none` elsewhere.
pub fn vector_extension() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "AVX-512"
        } else if std::arch::is_x86_feature_detected!("avx2") {
            "AVX2"
        } else {
            "SSE2"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "none"
    }
}

/// `AMD EPYC, AVX-512, 2 CPUs`: the line a benchmark prints first.
pub fn describe() -> String {
    format!(
        "{}, {}, {} CPUs",
        cpu_model(),
        vector_extension(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}
