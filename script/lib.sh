# Shared helpers for the scripts in script/. Source it, don't run it.

# Install Debian packages that are not installed yet (apt-get update only
# when something is missing, so warm machines start fast).
ensure_packages() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Several scripts may install at once (CI steps, parallel runs):
        # wait for dpkg's lock instead of failing on it.
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install a Rust toolchain >= 1.85 (rustup) and re-run" >&2
        exit 1
    fi
}

# Packages every build needs (DPDK bindings are generated with bindgen;
# the XDP director's programs are compiled with clang for the bpf target
# against libbpf's and the kernel's headers).
BUILD_PACKAGES=(build-essential pkg-config libclang-dev libdpdk-dev libpcap-dev clang libbpf-dev linux-libc-dev)

# What the tests use besides the build: dpdk-testpmd (dpdk-dev), unshare
# (util-linux), ip (iproute2), tshark for the dissector; QEMU and cpio
# boot Debian's 6.1 kernel to check the XDP programs there.
TEST_PACKAGES=(dpdk dpdk-dev iproute2 util-linux iptables procps qemu-system-x86 cpio)

# Reserve 2 MiB hugepages for DPDK runs that use them (--in-memory). Runs
# with --no-huge work without this; the reservation is not persistent.
ensure_hugepages() {
    local want=$1
    local f=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    [ -w "$f" ] || { echo "warning: cannot reserve hugepages ($f not writable)" >&2; return 0; }
    if [ "$(cat "$f")" -lt "$want" ]; then
        echo "$want" > "$f" || true
    fi
    if ! mountpoint -q /dev/hugepages 2>/dev/null; then
        mkdir -p /dev/hugepages
        mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
    fi
}

# Sums test counts in a log and prints "P F S" (passed, failed, skipped).
# With "cargo", counts cargo's "test result:" lines; otherwise the plain
# "N passed, M failed[, K skipped]" lines the shell test scripts print.
count_tests() {
    local kind=$1 log=$2
    if [ "$kind" = cargo ]; then
        awk '/^test result:/ {
                for (i = 1; i < NF; i++) {
                    if ($(i+1) ~ /^passed;/) p += $i
                    if ($(i+1) ~ /^failed;/) f += $i
                    if ($(i+1) ~ /^ignored;/) s += $i
                }
             }
             END { print p+0, f+0, s+0 }' "$log"
    else
        awk 'match($0, /^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$/) {
                sub(/^[A-Za-z_-]+: /, "")
                gsub(/,/, "")
                p += $1; f += $3; if (NF >= 5) s += $5
             }
             END { print p+0, f+0, s+0 }' "$log"
    fi
}

# Close every file descriptor above 2 of the current (sub)shell. Run in the
# subshell that starts a long-lived background process, so it does not keep
# what its starter holds open: `flock /tmp/glb-host.lock script/example up`
# must release the lock when `up` ends, not when the daemons do.
close_inherited_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    return 0
}

# One line about this CPU for benchmark output: model, widest vector
# extension, CPUs (as glb_testkit::machine::describe prints for the Rust
# benchmarks), then the caches.
cpu_line() {
    local model vec cache="" f
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    if grep -qw avx512f /proc/cpuinfo; then vec="AVX-512"
    elif grep -qw avx2 /proc/cpuinfo; then vec="AVX2"
    else vec="SSE2"; fi
    for f in /sys/devices/system/cpu/cpu0/cache/index*; do
        [ -r "$f/size" ] || continue
        case "$(cat "$f/level") $(cat "$f/type")" in
            "1 Data") cache+=", L1d $(cat "$f/size")" ;;
            "2 Unified") cache+=", L2 $(cat "$f/size")" ;;
            "3 Unified") cache+=", L3 $(cat "$f/size")" ;;
        esac
    done
    echo "${model:-unknown}, ${vec}, $(nproc) CPUs${cache}"
}
