# shellcheck shell=bash
# Steps of the TURN host bootstrap and its timers. Sourced by bootstrap.sh, peer_sync.sh and the tests.
# Paths and the service account can be moved with environment variables so the tests run the same functions
# in a scratch directory against a real relay. The ports (LISTEN_PORT, PROXY_PORT, ADMIN_LISTEN) have no
# default here: they come from params.env, rendered from contract.py.

RELAY_ETC=${RELAY_ETC:-/etc/bbb-turn-relay}
RELAY_VENV=${RELAY_VENV:-/opt/bbb-turn-relay}
RELAY_USER=${RELAY_USER:-bbb-turn-relay}
RELAY_GROUP=${RELAY_GROUP:-bbb-turn-relay}
RELAY_PYTHON=${RELAY_PYTHON:-/usr/bin/python3}
SYSCTL_DIR=${SYSCTL_DIR:-/etc/sysctl.d}

# --- Kernel -----------------------------------------------------------------------------------------------

# tune_kernel <local port range "lo hi"> <relay min> <relay max>: socket buffers for a UDP relay; ephemeral
# ports kept out of the relay range (and the range reserved) so outgoing connections never take a relay port.
tune_kernel() {
  local local_range=$1 min=$2 max=$3
  cat >"$SYSCTL_DIR/60-bbb-turn-relay.conf" <<EOF
# Written by bbb-on-aws for the TURN relay.
net.core.rmem_max = 33554432
net.core.wmem_max = 33554432
net.core.rmem_default = 1048576
net.core.wmem_default = 1048576
net.core.netdev_max_backlog = 65536
net.core.somaxconn = 4096
net.ipv4.udp_rmem_min = 16384
net.ipv4.udp_wmem_min = 16384
net.ipv4.ip_local_port_range = $local_range
net.ipv4.ip_local_reserved_ports = $min-$max
EOF
  # Connection tracking is not loaded on Ubuntu's EC2 image; if something loads it, size it for a relay.
  if [[ -d /proc/sys/net/netfilter ]]; then
    printf 'net.netfilter.nf_conntrack_max = 1048576\nnet.netfilter.nf_conntrack_udp_timeout = 30\n' \
      >"$SYSCTL_DIR/61-bbb-turn-relay-conntrack.conf"
  fi
  sysctl -q --system >/dev/null
}

# --- The relay --------------------------------------------------------------------------------------------

# install_relay <wheel> <constraints>: the relay and uvloop into a fresh virtualenv, versions pinned by the
# constraints file the renderer ships in the bundle.
install_relay() {
  local wheel=$1 constraints=$2
  [[ -x $RELAY_VENV/bin/python ]] || "$RELAY_PYTHON" -m venv "$RELAY_VENV" || die "cannot create $RELAY_VENV"
  "$RELAY_VENV/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
    --constraint "$constraints" "${wheel}[fast]" || die "cannot install the relay wheel $wheel"
  [[ -x $RELAY_VENV/bin/bbb-turn-relay ]] || die "the wheel did not install the bbb-turn-relay command"
}

# write_relay_secrets <turn secret>: seeds the secret file before the relay first starts (refresh_relay_secrets
# then keeps it to the accepted versions), and the nonce key derived from the secret with HMAC so every relay of
# the fleet accepts the others' nonces without a second secret. The nonce key is written once: the relay cannot
# reload it, and after a rotation it stays derived from the secret current at the first boot (a nonce from a
# relay booted on another secret costs a 438 and a retry, nothing more). Mode 0600, owned by the relay's
# account (it runs unprivileged and refuses secret files others can read).
write_relay_secrets() {
  local secret=$1 tmp
  tmp=$(mktemp)
  if [[ ! -s $RELAY_ETC/secret ]]; then
    printf '%s\n' "$secret" >"$tmp"
    install_if_changed "$tmp" "$RELAY_ETC/secret" 0600 "$RELAY_USER:$RELAY_GROUP" || true
  fi
  if [[ ! -s $RELAY_ETC/nonce-secret ]]; then
    printf '%s' "$secret" | python3 -c '
import hashlib, hmac, sys
key = sys.stdin.read().encode()
print(hmac.new(key, b"bbb-on-aws relay nonce key v1", hashlib.sha256).hexdigest())' >"$tmp"
    install_if_changed "$tmp" "$RELAY_ETC/nonce-secret" 0600 "$RELAY_USER:$RELAY_GROUP" || true
  fi
  rm -f "$tmp"
}

# refresh_relay_secrets <secret arn> <environment> <credential ttl s>: the relay accepts AWSCURRENT, AWSPENDING
# and AWSPREVIOUS until no BBB server may still hand out credentials made with it (turn/secret_versions.py).
# Reads only labels and tags while nothing changes; fetches values and reloads (SIGHUP: live allocations keep
# their keys) only when the accepted versions change. An API error keeps the current secrets.
refresh_relay_secrets() {
  local arn=$1 env=$2 ttl=$3 dir ids id value state="$BBB_ON_AWS_STATE_DIR/turn-secret-versions" query
  # shellcheck disable=SC2016 # the backquotes are JMESPath literals
  query='Reservations[].Instances[].[InstanceId, Tags[?Key==`bbb-on-aws:turn-secret`].Value | [0]]'
  dir=$(mktemp -d)
  if ! aws secretsmanager describe-secret --secret-id "$arn" --output json >"$dir/secret.json" ||
    ! aws ec2 describe-instances \
      --filters "Name=tag:bbb-on-aws:environment,Values=$env" "Name=tag:bbb-on-aws:role,Values=bbb,single" \
      "Name=instance-state-name,Values=pending,running" \
      --query "$query" \
      --output json >"$dir/servers.json" ||
    ! ids=$(python3 "$BBB_ON_AWS_DIR/turn/secret_versions.py" --secret "$dir/secret.json" \
      --servers "$dir/servers.json" --ttl "$ttl" --now "$(date +%s)"); then
    log "cannot read the TURN secret's versions or the BBB servers' tags; the relay keeps its secrets"
    rm -rf "$dir"
    return 1
  fi
  if [[ -s $RELAY_ETC/secret && -f $state && $(<"$state") == "$ids" ]]; then
    rm -rf "$dir"
    return 0
  fi
  : >"$dir/secrets"
  : >"$dir/written"
  while read -r id stage; do
    if ! value=$(aws secretsmanager get-secret-value --secret-id "$arn" --version-id "$id" \
      --query SecretString --output text 2>/dev/null); then
      # RotateSecret labels the new version AWSPENDING before createSecret gives it a value, and a refused
      # createSecret leaves it so: the relay goes on without it (the next tick tries again).
      if [[ $stage == AWSPENDING ]]; then
        log "version $id (AWSPENDING) has no value yet; the relay accepts the others"
        continue
      fi
      value=""
    fi
    if [[ ! $value =~ ^[A-Za-z0-9]{16,128}$ ]]; then
      log "cannot read version $id of the TURN secret as 16-128 letters and digits; the relay keeps its secrets"
      rm -rf "$dir"
      return 1
    fi
    printf '%s\n' "$value" >>"$dir/secrets"
    printf '%s %s\n' "$id" "$stage" >>"$dir/written"
  done <<<"$ids"
  if install_if_changed "$dir/secrets" "$RELAY_ETC/secret" 0600 "$RELAY_USER:$RELAY_GROUP"; then
    log "the relay accepts TURN secret versions: $(tr '\n' ' ' <"$dir/written")"
    if systemctl is-active --quiet bbb-turn-relay; then
      systemctl reload bbb-turn-relay
    fi
  fi
  mkdir -p "$BBB_ON_AWS_STATE_DIR"
  cp "$dir/written" "$state"  # what the relay got: a version skipped above differs, so it is fetched again
  rm -rf "$dir"
}

# render_relay_conf <realm> <listen ip> <external ip> <min port> <max port> <total quota> <user quota>
#                   <max bps> <drain timeout s>: coturn's turnserver.conf syntax (the relay reads it).
render_relay_conf() {
  local realm=$1 ip=$2 external=$3 min=$4 max=$5 total=$6 user=$7 bps=$8 drain=$9
  cat <<EOF
# Written by bbb-on-aws at boot. coturn turnserver.conf syntax, read by bbb-turn-relay.
realm=$realm
listening-ip=$ip
listening-port=$LISTEN_PORT
# Plain TCP with PROXY protocol v2: the NLB's TLS 443 listener (turns.<domain>) forwards here.
tcp-proxy-port=$PROXY_PORT
# ... whose clients used TLS (turns:443): their connections are counted as tls, not tcp.
tcp-proxy-transport=tls
relay-ip=$ip
external-ip=$external
min-port=$min
max-port=$max
use-auth-secret
auth-secret-file=$RELAY_ETC/secret
nonce-secret-file=$RELAY_ETC/nonce-secret
# Peers: nothing but this deployment's BBB servers (refreshed by the peer-sync timer, reloaded on SIGHUP).
denied-peer-ip=0.0.0.0-255.255.255.255
denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
allowed-peers-file=$RELAY_ETC/allowed-peers.conf
total-quota=$total
user-quota=$user
max-bps=$bps
admin-listen=$ADMIN_LISTEN
drain-timeout=$drain
# UDP channels and indications forwarded in the kernel (TC eBPF on listening-ip's interface); a host whose
# kernel refuses it logs one line why and serves from user space.
kernel-offload=auto
EOF
}

# --- Allowed peers ----------------------------------------------------------------------------------------

# bbb_peer_addresses <environment>: public and private IPv4 of this deployment's BBB servers (pending or
# running), one per line, sorted. Fails (printing nothing) when the EC2 API call fails.
bbb_peer_addresses() {
  local env=$1 out
  out=$(aws ec2 describe-instances \
    --filters "Name=tag:bbb-on-aws:environment,Values=$env" "Name=tag:bbb-on-aws:role,Values=bbb,single" \
    "Name=instance-state-name,Values=pending,running" \
    --query 'Reservations[].Instances[].[PublicIpAddress,PrivateIpAddress]' --output text) || return 1
  tr -s ' \t' '\n' <<<"$out" | grep -E '^([0-9]{1,3}\.){3}[0-9]{1,3}$' | sort -u -V || true
}

# sync_allowed_peers <environment>: rewrites allowed-peers.conf (atomically) only when the fleet changed and
# then reloads the relay. An API error leaves the current list in place: it is never replaced by nothing.
sync_allowed_peers() {
  local env=$1 peers tmp
  if ! peers=$(bbb_peer_addresses "$env"); then
    log "DescribeInstances failed; keeping the current allowed peers"
    return 1
  fi
  tmp=$(mktemp)
  if [[ -n $peers ]]; then printf '%s\n' "$peers" >"$tmp"; fi
  if install_if_changed "$tmp" "$RELAY_ETC/allowed-peers.conf" 0644 root:root; then
    log "allowed peers now: $(tr '\n' ' ' <"$RELAY_ETC/allowed-peers.conf")"
    if systemctl is-active --quiet bbb-turn-relay; then
      systemctl reload bbb-turn-relay
    fi
  fi
  rm -f "$tmp"
}

# --- Readiness --------------------------------------------------------------------------------------------

# relay_ready <ip>: /readyz is 200 and a STUN Binding to <ip>:LISTEN_PORT is answered.
relay_ready() {
  local ip=$1
  curl -fsS --max-time 3 -o /dev/null "http://$ADMIN_LISTEN/readyz" &&
    python3 "$BBB_ON_AWS_DIR/common/stun_ping.py" --timeout 2 "$ip" "$LISTEN_PORT" >/dev/null
}

# wait_for_relay <ip> <timeout s> [<interval s>]
wait_for_relay() {
  local ip=$1 timeout=$2 interval=${3:-5} start
  start=$(date +%s)
  until relay_ready "$ip"; do
    if (($(date +%s) - start >= timeout)); then
      log "ERROR: the relay did not become ready (readyz + STUN on $ip:$LISTEN_PORT) within ${timeout}s"
      return 1
    fi
    sleep "$interval"
  done
  log "the relay answers /readyz and STUN on $ip:$LISTEN_PORT"
}

# relay_become_ready <ip> <timeout s> [<interval s>]: the ready tag only once the relay serves.
relay_become_ready() {
  wait_for_relay "$@" || return 1
  tag_ready
}
