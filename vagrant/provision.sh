#!/usr/bin/env bash
# Provision one host of the example (run as root by Vagrant in a VM, or
# by `script/example up --hosts` in a container booting systemd):
#   provision.sh user|router|director1|director2|proxy1|proxy2
# Files and addresses come from /glb/script/example-lib.sh, the same
# helpers script/example uses; GLB itself comes from the Debian packages in
# $GLB_DEBS (default /glb/target/debian). GLB_EXAMPLE_LCORES sets the
# director's DPDK lcores (default 0@0,1@1,2@1).
set -euo pipefail
role=$1
GLB=${GLB_SOURCE:-/glb}
DEBS=${GLB_DEBS:-$GLB/target/debian}
# shellcheck source=../script/example-lib.sh
. "$GLB/script/example-lib.sh"

export DEBIAN_FRONTEND=noninteractive
say() { echo "==> $role: $*"; }

# Debian packages that are not installed yet (the containers' root
# filesystem has them all: they have no network to fetch from).
apt_install() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

glb_debs() { # PACKAGE...: the newest built .deb of each
    local p f
    for p in "$@"; do
        f=$(ls -t "$DEBS/${p}"_*.deb 2>/dev/null | head -1)
        [ -n "$f" ] || { echo "no $p package in $DEBS: run script/build-packages on the host first" >&2; exit 1; }
        echo "$f"
    done
}

iface_of() { # ADDRESS: the interface Vagrant gave it
    ip -o -4 addr show | awk -v ip="$1" 'index($4, ip "/") == 1 { print $2; exit }'
}

# A oneshot unit for the settings that must survive a reboot.
network_unit() { # COMMANDS
    cat >/etc/systemd/system/glb-example-network.service <<UNIT
[Unit]
Description=GLB example: addresses, routes and offloads of this VM
After=network-online.target
Wants=network-online.target
Before=bird.service glb-director.service glb-redirect.service nginx.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '$1'

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now glb-example-network.service
    systemctl restart glb-example-network.service
}

# Software checksums and no segmentation offloads: directors read frames
# with AF_PACKET and must see finished checksums and real-sized packets.
no_offload_cmd() { echo "ethtool -K $1 tx off tso off gso off gro off || true"; }

bird_setup() { # CONFIG-TEXT
    apt_install bird2
    printf '%s\n' "$1" >/etc/bird/bird.conf
    systemctl enable bird.service >/dev/null
    systemctl restart bird.service
}

# The host name is the role's: nginx answers with it. (Vagrant sets it on
# VMs; an LXC container boots with the box's /etc/hostname.)
if [ "$(hostname)" != "$role" ]; then
    echo "$role" >/etc/hostname
    hostname "$role"
fi

case $role in
user)
    apt_install ethtool curl
    ifc=$(iface_of "${USER_ADDRS[0]}")
    cmds="$(no_offload_cmd "$ifc")"
    for a in "${USER_ADDRS[@]:1}"; do cmds+="; ip addr replace $a/24 dev $ifc"; done
    network_unit "$cmds"
    bird_setup "$(bird_user_conf)"
    ;;
router)
    apt_install ethtool curl
    cat >/etc/sysctl.d/60-glb-example.conf <<CONF
net.ipv4.ip_forward = 1
# spread flows over the directors by L4 hash, like a datacenter router
net.ipv4.fib_multipath_hash_policy = 1
# the director -> router -> proxy hairpin is expected
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
CONF
    sysctl -q -p /etc/sysctl.d/60-glb-example.conf
    network_unit "$(no_offload_cmd "$(iface_of "$ROUTER_USER_IP")"); $(no_offload_cmd "$(iface_of "$ROUTER_DC_IP")")"
    bird_setup "$(bird_router_conf)"
    ;;
director1 | director2)
    name=glb-$role
    apt_install ethtool curl tshark iputils-ping
    # shellcheck disable=SC2046
    apt-get install -y -qq $(glb_debs glb-director-cli glb-director glb-healthcheck glb-wireshark-dissector) >/dev/null
    ifc=$(iface_of "${DC_IP[$name]}")
    network_unit "$(no_offload_cmd "$ifc"); sysctl -qw net.ipv4.ip_forward=0"

    # The router's MAC: every encapsulated frame goes to it.
    ping -c 1 -W 2 "$ROUTER_DC_IP" >/dev/null || true
    gw_mac=$(ip neigh show "$ROUTER_DC_IP" dev "$ifc" | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }')
    [ -n "$gw_mac" ] || { echo "cannot resolve the router's MAC ($ROUTER_DC_IP): provision the router first" >&2; exit 1; }

    say "writing /etc/glb and /etc/default/glb-director"
    director_conf "$name" "$gw_mac" >/etc/glb/director.conf
    forwarding_table_src active active >/etc/glb/forwarding_table.src.json
    healthcheck_conf glb-director-cli "systemctl reload glb-director" >/etc/glb/healthcheck.conf
    director_default "$ifc" "${GLB_EXAMPLE_LCORES:-0@0,1@1,2@1}" glb-director >/etc/default/glb-director
    # DPDK locks memory (LimitMEMLOCK=infinity): where this host may not
    # raise its limit (a container without CAP_SYS_RESOURCE), keep the one it has.
    mkdir -p /etc/systemd/system/glb-director.service.d
    capbnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
    if [ "$(ulimit -Hl)" != unlimited ] && [ $(((0x$capbnd >> 24) & 1)) = 0 ]; then # CAP_SYS_RESOURCE
        printf '[Service]\nLimitMEMLOCK=%s\n' "$(($(ulimit -Hl) * 1024))" \
            >/etc/systemd/system/glb-director.service.d/memlock.conf
    else
        rm -f /etc/systemd/system/glb-director.service.d/memlock.conf
    fi
    systemctl daemon-reload

    systemctl restart glb-healthcheck.service
    for _ in $(seq 30); do [ -s /etc/glb/forwarding_table.checked.json ] && break; sleep 1; done
    glb-director-cli build-config /etc/glb/forwarding_table.checked.json /etc/glb/forwarding_table.checked.bin
    systemctl enable glb-director.service >/dev/null
    systemctl restart glb-director.service
    bird_setup "$(bird_director_conf "$name" /usr/share/glb-director/bird.conf)"
    ;;
proxy1 | proxy2)
    name=glb-$role
    apt_install ethtool curl tshark nginx
    # shellcheck disable=SC2046
    apt-get install -y -qq $(glb_debs glb-redirect glb-wireshark-dissector) >/dev/null
    ifc=$(iface_of "${DC_IP[$name]}")
    # The VIP on lo, not answered in ARP; replies go back through the
    # router (direct server return).
    network_unit "ip addr replace $VIP/32 dev lo; ip route replace $USER_NET via $ROUTER_DC_IP; sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2; $(no_offload_cmd "$ifc")"
    mkdir -p /var/www/glb/files
    [ -s /var/www/glb/files/big.bin ] || head -c $((16 * 1024 * 1024)) /dev/urandom >/var/www/glb/files/big.bin
    nginx_server_conf /var/www/glb >/etc/nginx/sites-available/glb-example
    rm -f /etc/nginx/sites-enabled/default
    ln -sf /etc/nginx/sites-available/glb-example /etc/nginx/sites-enabled/glb-example
    # The package's allowlists narrowed to the example's directors and proxies.
    redirect_default /run/glb-redirect/stats >/etc/default/glb-redirect
    systemctl enable nginx.service >/dev/null
    systemctl restart nginx.service glb-redirect.service
    ;;
*)
    echo "usage: $0 user|router|director1|director2|proxy1|proxy2" >&2
    exit 2
    ;;
esac
say "done"
