# The walkthrough's datacenter: addresses and the configuration files of
# each host, shared by script/example (network namespaces) and
# vagrant/provision.sh (virtual machines). Source it; each *_conf function
# prints one file on standard output.
#
#   user 192.168.40.2, .50-.55 ── router 192.168.40.3 | 192.168.50.2 ── directors .6 .7, proxies .10 .11

VIP=10.10.10.10
USER_ADDRS=(192.168.40.2 192.168.40.50 192.168.40.51 192.168.40.52 192.168.40.53 192.168.40.54 192.168.40.55)
ROUTER_USER_IP=192.168.40.3
ROUTER_DC_IP=192.168.50.2
USER_NET=192.168.40.0/24
DC_NET=192.168.50.0/24
declare -A DC_IP=([glb-director1]=192.168.50.6 [glb-director2]=192.168.50.7
                  [glb-proxy1]=192.168.50.10 [glb-proxy2]=192.168.50.11)
declare -A HOSTNAME_OF=([glb-proxy1]=proxy1 [glb-proxy2]=proxy2)
# BGP: router AS 65000, both directors AS 65001 (equal routes, so the router
# installs both as one ECMP route), user AS 65100.
AS_ROUTER=65000
AS_DIRECTORS=65001
AS_USER=65100

# BIRD's log line: a file for the example, syslog on the VMs.
bird_log_line() { # [FILE]
    if [ -n "${1:-}" ]; then echo "log \"$1\" all;"; else echo "log syslog all;"; fi
}

bird_router_conf() { # [LOGFILE]
    cat <<EOF
# router: BGP with both directors (ECMP over them) and with the user.
router id $ROUTER_DC_IP;
$(bird_log_line "${1:-}")
protocol device { scan time 5; }
protocol kernel {
    merge paths on;
    ipv4 { import none; export where net = $VIP/32; };
}
template bgp director {
    local as $AS_ROUTER;
    hold time 9; keepalive time 3; connect retry time 2;
    ipv4 { import where net = $VIP/32; export none; };
}
protocol bgp director1 from director { neighbor ${DC_IP[glb-director1]} as $AS_DIRECTORS; }
protocol bgp director2 from director { neighbor ${DC_IP[glb-director2]} as $AS_DIRECTORS; }
protocol bgp to_user {
    local $ROUTER_USER_IP as $AS_ROUTER;
    neighbor ${USER_ADDRS[0]} as $AS_USER;
    hold time 9; keepalive time 3; connect retry time 2;
    ipv4 { import none; export where net = $VIP/32; };
}
EOF
}

# The director announces the VIP only while its glb-director runs: the
# package's BIRD snippet learns the route that glb-director.service (or the
# example's supervisor) keeps while the director is up.
bird_director_conf() { # DIRECTOR(glb-director1|glb-director2) SNIPPET [LOGFILE]
    cat <<EOF
# ${1#glb-}: announce the VIP to the router while glb-director runs.
router id ${DC_IP[$1]};
$(bird_log_line "${3:-}")
protocol device { scan time 5; }
include "$2";
protocol bgp to_router {
    local ${DC_IP[$1]} as $AS_DIRECTORS;
    neighbor $ROUTER_DC_IP as $AS_ROUTER;
    hold time 9; keepalive time 3; connect retry time 2;
    ipv4 { import none; export where glb_director_vip() && net = $VIP/32; };
}
EOF
}

bird_user_conf() { # [LOGFILE]
    cat <<EOF
# user: learn the VIP from the router.
router id ${USER_ADDRS[0]};
$(bird_log_line "${1:-}")
protocol device { scan time 5; }
protocol kernel { ipv4 { import none; export where net = $VIP/32; }; }
protocol bgp to_router {
    local ${USER_ADDRS[0]} as $AS_USER;
    neighbor $ROUTER_USER_IP as $AS_ROUTER;
    hold time 9; keepalive time 3; connect retry time 2;
    ipv4 { import where net = $VIP/32; export none; };
}
EOF
}

# nginx on a proxy: the host name at /, static files under /files/.
nginx_server_conf() { # WWW-ROOT
    cat <<EOF
server {
    listen 80 default_server;
    location = / {
        default_type text/plain;
        return 200 "\$hostname\n";
    }
    location /files/ { root $1; }
}
EOF
}

# /etc/glb/forwarding_table.src.json: the walkthrough's table, with the
# two proxies' states as arguments.
forwarding_table_src() { # STATE-OF-PROXY1 STATE-OF-PROXY2
    cat <<EOF
{
  "healthchecks": { "interval_ms": 2000, "timeout_ms": 1000, "trigger": 3 },
  "tables": [
    {
      "name": "example-vip",
      "hash_key": "12345678901234561234567890123456",
      "seed": "34567890123456783456789012345678",
      "binds": [
        { "ip": "$VIP", "proto": "tcp", "port": 80 }
      ],
      "backends": [
        { "ip": "${DC_IP[glb-proxy1]}", "state": "$1", "healthchecks": { "http": 80, "gue": 19523 } },
        { "ip": "${DC_IP[glb-proxy2]}", "state": "$2", "healthchecks": { "http": 80, "gue": 19523 } }
      ]
    }
  ]
}
EOF
}

# /etc/glb/director.conf: one port (0), a distributor core with one worker.
director_conf() { # DIRECTOR GATEWAY-MAC
    cat <<EOF
{
  "outbound_gateway_mac": "$2",
  "outbound_src_ip": "${DC_IP[$1]}",
  "forward_icmp_ping_responses": true,
  "num_worker_queues": 1,
  "flow_paths": [
    { "rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0 }
  ],
  "lcores": {
    "lcore-1": { "rx": true, "tx": true, "flow_paths": [0], "dist": true, "num_dist_workers": 1 },
    "lcore-2": { "work": true, "work_source": 1 }
  }
}
EOF
}

# /etc/glb/healthcheck.conf with the given reload command after the table
# is compiled.
healthcheck_conf() { # CLI-PATH DIRECTOR-RELOAD-COMMAND
    cat <<EOF
{
  "forwarding_table": {
    "src": "/etc/glb/forwarding_table.src.json",
    "dst": "/etc/glb/forwarding_table.checked.json"
  },
  "reload_command": "$1 build-config /etc/glb/forwarding_table.checked.json /etc/glb/forwarding_table.checked.bin && $2"
}
EOF
}

# glb-redirect's allowlists: GUE only from the directors and the proxies
# (second chances, health checks), second chances only to the proxies.
redirect_allow_args() {
    echo "--allow-source ${DC_IP[glb-director1]},${DC_IP[glb-director2]},${DC_IP[glb-proxy1]},${DC_IP[glb-proxy2]} --allow-hop ${DC_IP[glb-proxy1]},${DC_IP[glb-proxy2]}"
}

# /etc/default/glb-redirect on a proxy: the packaged settings with the
# example's allowlists.
redirect_default() { # STATS-FILE
    cat <<EOF
GLB_REDIRECT_ARGS="--listen 0.0.0.0:19523 --tun glbredirect0 --workers 1 --stats-file $1 $(redirect_allow_args)"
GLB_REDIRECT_MODE=socket
GLB_REDIRECT_PORT=19523
GLB_REDIRECT_QUEUES=0
EOF
}

# /etc/default/glb-director: DPDK reads the datacenter interface through
# net_af_packet; ordinary memory, no PCI, no hugepages.
director_default() { # IFACE LCORES FILE-PREFIX
    cat <<EOF
GLB_DIRECTOR_EAL_ARGS="--no-huge --no-shconf -m 256 --no-pci --no-telemetry --file-prefix $3 --lcores=$2 --vdev=net_af_packet0,iface=$1"
GLB_DIRECTOR_CONFIG_FILE=/etc/glb/director.conf
GLB_DIRECTOR_FORWARDING_TABLE=/etc/glb/forwarding_table.checked.bin
GLB_DIRECTOR_ANNOUNCE=auto
GLB_DIRECTOR_ANNOUNCE_TABLE=1952
EOF
}
