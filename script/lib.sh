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
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install a Rust toolchain >= 1.85 (rustup) and re-run" >&2
        exit 1
    fi
}

# Packages every build needs (DPDK bindings are generated with bindgen).
BUILD_PACKAGES=(build-essential pkg-config libclang-dev libdpdk-dev libpcap-dev)
