# shellcheck shell=bash
# The example's six hosts as containers booting systemd (script/example
# up --hosts). Sourced by script/example, after script/lib.sh.
#
# Each host is `systemd-nspawn -b` on an overlay of one root filesystem that
# mmdebstrap builds from Debian's packages and that is cached under
# $EXAMPLE_CACHE, keyed by its package list. Each container gets a network
# namespace of its own (--private-network), which is then given the
# host's name (ip netns attach glb-HOST) and wired by script/example's
# create_network, so the network is the namespaces example's, byte for byte. vagrant/provision.sh, the Vagrant
# machines' provisioning, then installs the suite's .debs with apt and
# configures BIRD, nginx and /etc/glb in each; systemd runs every daemon
# from its unit.

EXAMPLE_CACHE=${GLB_EXAMPLE_CACHE:-/var/cache/glb-example}
HOST_NAMES=(user router director1 director2 proxy1 proxy2)

# What the hosts need besides the suite's packages and their dependencies
# (sshd, sudo and ifupdown for Vagrant: vagrant/build-lxc-box makes its box
# from the same root filesystem).
ROOTFS_PACKAGES=(systemd systemd-sysv dbus netbase iproute2 iputils-ping procps ethtool curl jq
    bird2 nginx tshark ca-certificates less openssh-server sudo ifupdown)

HOST_TOOLS=(mmdebstrap:mmdebstrap systemd-nspawn:systemd-container nsenter:util-linux)

container_dir() { echo "$STATE/hosts/$1"; }
container_root() { echo "$STATE/hosts/$1/root"; }

# The host pid of a container's PID 1 (its systemd), or failure.
container_leader() { # HOST
    local d=$STATE/hosts/$1 pid nspawn
    pid=$(cat "$d/leader.pid" 2>/dev/null) || pid=""
    if [ -n "$pid" ] && [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$pid/status" 2>/dev/null)" = 1 ]; then
        echo "$pid"
        return 0
    fi
    nspawn=$(cat "$d/nspawn.pid" 2>/dev/null) || return 1
    for pid in $(pgrep -P "$nspawn" 2>/dev/null); do
        if [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$pid/status" 2>/dev/null)" = 1 ]; then
            echo "$pid" >"$d/leader.pid"
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# Run a command inside a container, in all its namespaces (so pids, files,
# systemctl and journalctl are the container's), with a clean environment.
container_exec() { # HOST COMMAND...
    local host=$1 pid
    shift
    pid=$(container_leader "$host") || { echo "container $host is not running" >&2; return 125; }
    nsenter --target "$pid" --all --root --wd \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

# Fail, saying what is missing, when this machine cannot run the containers.
require_host_features() {
    local t cmd pkg missing=()
    for t in "${HOST_TOOLS[@]}"; do
        cmd=${t%%:*}
        pkg=${t#*:}
        command -v "$cmd" >/dev/null || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] || ensure_packages "${missing[@]}"
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
    grep -qw overlay /proc/filesystems ||
        die "--hosts needs overlayfs (no 'overlay' in /proc/filesystems, modprobe overlay failed)"
    [ -d /sys/fs/cgroup ] && [ -n "$(ls -A /sys/fs/cgroup 2>/dev/null)" ] ||
        die "--hosts needs cgroups mounted at /sys/fs/cgroup (systemd-nspawn runs systemd in the containers)"
    [ -c /dev/net/tun ] || die "--hosts needs /dev/net/tun (glb-redirect in the proxy containers)"
}

# The suite's .debs for the hosts: the newest build of each package.
host_debs_dir() { echo "${GLB_EXAMPLE_DEBS:-$(target_dir)/debian}"; }

newest_deb() { # PACKAGE
    ls -t "$(host_debs_dir)/${1}"_*.deb 2>/dev/null | head -1
}

# Dependencies (and recommendations) of the suite's packages that come from
# Debian: the containers have no network, so their root filesystem must
# hold them all before apt installs the .debs.
deb_dependencies() {
    local p f
    for p in glb-director-cli glb-director glb-healthcheck glb-redirect glb-wireshark-dissector; do
        f=$(newest_deb "$p")
        [ -n "$f" ] || die "no $p package in $(host_debs_dir): run script/build-packages first (or set GLB_EXAMPLE_DEBS)"
        dpkg-deb -f "$f" Depends Pre-Depends Recommends
    done | sed 's/^[A-Za-z-]*: //' | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' |
        grep -v '^$' | grep -v '^glb-' | sort -u
}

# The cached root filesystem, built when its package list is new.
ensure_rootfs() { # -> ROOTFS
    local codename pkgs key lock
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mapfile -t pkgs < <({ printf '%s\n' "${ROOTFS_PACKAGES[@]}"; deb_dependencies; } | sort -u)
    key=$(printf '%s\n' "$codename" "${pkgs[@]}" | sha256sum | cut -c1-16)
    ROOTFS=$EXAMPLE_CACHE/rootfs-$codename-$key
    mkdir -p "$EXAMPLE_CACHE"
    # One build at a time (up --hosts and vagrant/build-lxc-box share it).
    exec {lock}>"$EXAMPLE_CACHE/.rootfs.lock"
    flock "$lock"
    build_rootfs "$codename" "${pkgs[@]}"
    exec {lock}>&-
}

build_rootfs() { # CODENAME PACKAGE...
    local codename=$1 sources=() f tmp
    shift
    local pkgs=("$@")
    if [ -f "$ROOTFS/.glb-example-complete" ]; then
        say "root filesystem: $ROOTFS (cached)"
        return 0
    fi
    # This machine's own Debian sources (the same mirror and suites).
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && grep -qw "$codename" "$f" && sources+=("$f")
    done
    [ ${#sources[@]} -gt 0 ] || die "no apt source for $codename in /etc/apt: mmdebstrap needs one"
    tmp=$ROOTFS.tmp
    rm -rf "$tmp"
    say "building the hosts' root filesystem with mmdebstrap ($codename, ${#pkgs[@]} packages; a few minutes, cached in $EXAMPLE_CACHE)"
    local IFS=,
    # BIRD and nginx stay off until provisioning configures them; the apt
    # lists stay so apt can resolve the suite's .debs offline.
    if ! mmdebstrap --variant=apt --include="${pkgs[*]}" --skip=cleanup/apt/lists \
        --customize-hook='chroot "$1" systemctl disable bird.service nginx.service' \
        "$codename" "$tmp" "${sources[@]}" >"$EXAMPLE_CACHE/mmdebstrap.log" 2>&1; then
        rm -rf "$tmp"
        die "mmdebstrap failed; the end of $EXAMPLE_CACHE/mmdebstrap.log: $(tail -5 "$EXAMPLE_CACHE/mmdebstrap.log")"
    fi
    unset IFS
    touch "$tmp/.glb-example-complete"
    mv "$tmp" "$ROOTFS"
    # Older root filesystems (other package lists) go, unless a running
    # example's overlay still uses one.
    for f in "$EXAMPLE_CACHE"/rootfs-*; do
        [ "$f" = "$ROOTFS" ] || [ "$f" = "$ROOTFS.tmp" ] || grep -q "lowerdir=$f[,:]" /proc/mounts ||
            rm -rf "$f"
    done
    say "root filesystem: $ROOTFS"
}

# An overlay of the cached root filesystem for one host, and its boot.
container_start() { # HOST
    local host=$1 d root binds=()
    d=$(container_dir "$host")
    root=$d/root
    mkdir -p "$d/upper" "$d/work" "$root"
    mount -t overlay "glb-example-$host" -o "lowerdir=$ROOTFS,upperdir=$d/upper,workdir=$d/work" "$root"
    touch "$d/mounted"
    echo "$host" >"$root/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$host" >"$root/etc/hosts"
    # Provisioning reads the checkout (script/example-lib.sh,
    # vagrant/provision.sh) and the .debs, as the Vagrant machines do.
    binds=(--bind-ro="$REPO:/glb" --bind-ro="$(host_debs_dir):/glb-debs")
    case $host in
    proxy*) binds+=(--bind-ro="$STATE/www:/var/www/glb") ;;
    # DPDK's EAL reads /sys/module (which nspawn leaves out of /sys)
    director*) binds+=(--bind-ro=/sys/module) ;;
    esac
    # The unified cgroup hierarchy inside: with the legacy one of a host
    # whose PID 1 is not systemd, units fail to restart (219/CGROUP).
    # DPDK locks memory (CAP_IPC_LOCK).
    (close_inherited_fds && container_cgroup_enter "$host" && SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec setsid systemd-nspawn --boot \
        --keep-unit --register=no --directory="$root" --machine="$host" --private-network \
        --console=passive --capability=CAP_IPC_LOCK "${binds[@]}") >"$d/nspawn.log" 2>&1 </dev/null &
    echo $! >"$d/nspawn.pid"
}

# Each container in a cgroup of its own. systemd-nspawn puts the container
# in "payload" below its own cgroup: started side by side from one cgroup
# (a host whose PID 1 is not systemd leaves everything in the root one),
# the containers' systemds would share one tree and trip over each other's
# units (219/CGROUP, EIO at boot).
CGROUP_HIERARCHIES=(/sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup)

container_cgroup_enter() { # HOST: move the calling (sub)shell there
    local h d done=0
    for h in "${CGROUP_HIERARCHIES[@]}"; do
        [ -f "$h/cgroup.procs" ] || continue
        d=$h/glb-example/$1
        mkdir -p "$d"
        echo "$BASHPID" >"$d/cgroup.procs"
        done=1
    done
    [ "$done" = 1 ] || { echo "no writable cgroup hierarchy under /sys/fs/cgroup" >&2; return 1; }
}

container_cgroup_remove() { # HOST
    local h
    for h in "${CGROUP_HIERARCHIES[@]}"; do
        [ -d "$h/glb-example/$1" ] || continue
        find "$h/glb-example/$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$h/glb-example" 2>/dev/null || true
    done
}

# The container's network namespace under the name script/example uses.
container_attach_netns() { # HOST NS
    local pid
    pid=$(container_leader "$1") || return 1
    ip netns attach "$2" "$pid"
}

# Until the container's systemd has finished booting.
container_booted() { # HOST
    local state
    state=$(container_exec "$1" systemctl is-system-running 2>/dev/null) || true
    case $state in running | degraded) return 0 ;; *) return 1 ;; esac
}

container_stop() { # HOST
    local d pid i
    d=$(container_dir "$1")
    pid=$(cat "$d/nspawn.pid" 2>/dev/null) || pid=""
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        # systemd-nspawn turns SIGTERM into an orderly shutdown of the container.
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$d/nspawn.pid" "$d/leader.pid"
    for _ in $(seq 25); do
        mountpoint -q "$d/root" || break
        umount -R "$d/root" 2>/dev/null || sleep 0.2
    done
    mountpoint -q "$d/root" && umount -R -l "$d/root" 2>/dev/null
    mountpoint -q "$d/root" || rm -f "$d/mounted"
    container_cgroup_remove "$1"
}

containers_down() {
    local host left
    [ -d "$STATE/hosts" ] || return 0
    for host in "${HOST_NAMES[@]}"; do
        [ -d "$STATE/hosts/$host" ] || continue
        container_stop "$host" &
    done
    wait
    # Never delete through a root filesystem that is still mounted.
    left=$(findmnt -rn -o TARGET | grep "^$STATE/hosts/" || true)
    [ -z "$left" ] || die "still mounted, not removed: $left"
    rm -rf "${STATE:?}/hosts"
}

# vagrant/provision.sh inside a container, as Vagrant runs it in a VM.
provision_host() { # HOST [ENV=VALUE...]
    local host=$1
    shift
    container_exec "$host" env GLB_DEBS=/glb-debs "$@" bash /glb/vagrant/provision.sh "$host" \
        >"$STATE/hosts/$host/provision.log" 2>&1
}
