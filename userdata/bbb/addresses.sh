# shellcheck shell=bash
# The public IPv4 BigBlueButton announces, rewritten on every boot (a warm-pool server gets a new address each
# time Auto Scaling starts it). Sourced by on_boot.sh (and by the tests), never executed.
#
# bbb-install (v3.0, run with IP=<public> INTERNAL_IP=<private>, see run_bbb_install) writes the public address
# into exactly these places (its check_nat and configure_html5/SSL steps); the private address and the host
# name do not change across a stop/start, so nothing else needs touching:
#   bbb-webrtc-sfu  /etc/bigbluebutton/bbb-webrtc-sfu/production.yml  freeswitch.ip, freeswitch.sip_ip,
#                   mediasoup.webrtc.listenIps[0].announcedIp, mediasoup.plainRtp.listenIp.announcedIp
#   FreeSWITCH      /opt/freeswitch/etc/freeswitch/vars.xml            external_rtp_ip=, external_sip_ip=
#                   /opt/freeswitch/etc/freeswitch/sip_profiles/external.xml  ws-binding, wss-binding <ip>:port
#   nginx           /usr/share/bigbluebutton/nginx/sip.nginx           proxy_pass http://<ip>:5066
#   loopback        /lib/systemd/system/dummy-nic.service              ip addr add <ip> dev lo (FreeSWITCH binds
#                   its WebSocket to the public address, which AWS never puts on the NIC)
# bbb-web.properties holds the host name only (bbb-conf --setip <fqdn>), and stays as it is.

FREESWITCH_CONF=${FREESWITCH_CONF:-/opt/freeswitch/etc/freeswitch}
SYSTEMD_LIB_DIR=${SYSTEMD_LIB_DIR:-/lib/systemd/system}
BOOT_ID_FILE=${BOOT_ID_FILE:-/proc/sys/kernel/random/boot_id}

# announced_ipv4: the public address BBB announces now (FreeSWITCH's external_rtp_ip, as bbb-install set it).
announced_ipv4() {
  local vars="$FREESWITCH_CONF/vars.xml" found
  [[ -f $vars ]] || return 1
  found=$(sed -n 's/.*data="external_rtp_ip=\([0-9.]*\)".*/\1/p' "$vars" | tail -n 1)
  [[ $found =~ ^[0-9]+(\.[0-9]+){3}$ ]] || return 1
  printf '%s\n' "$found"
}

# address_files: every file that holds the announced address (those that exist on this host).
address_files() {
  local file
  for file in "$BBB_ETC/bbb-webrtc-sfu/production.yml" "$FREESWITCH_CONF/vars.xml" \
    "$FREESWITCH_CONF/sip_profiles/external.xml" "$BBB_NGINX_DIR/sip.nginx" "$SYSTEMD_LIB_DIR/dummy-nic.service"; do
    [[ -f $file ]] && printf '%s\n' "$file"
  done
  return 0
}

# replace_address <file> <old> <new>: the old address as a whole word only (10.0.0.1 never matches 110.0.0.12),
# file mode and owner kept, written atomically.
replace_address() {
  local file=$1 old=$2 new=$3 tmp pattern
  pattern=${old//./\\.}
  grep -qE "(^|[^0-9.])${pattern}([^0-9.]|$)" "$file" || return 0
  tmp=$(mktemp "$(dirname "$file")/.$(basename "$file").XXXXXX")
  sed -E "s/(^|[^0-9.])${pattern}([^0-9.]|$)/\\1${new}\\2/g; s/(^|[^0-9.])${pattern}([^0-9.]|$)/\\1${new}\\2/g" \
    "$file" >"$tmp"
  chmod --reference="$file" "$tmp"
  chown --reference="$file" "$tmp"
  mv -f "$tmp" "$file"
  log "  $file: $old -> $new"
}

# rewrite_announced_addresses <new public ipv4>: the whole rewrite, idempotent; then the stamp the ready step
# requires for this boot. Fails (nothing stamped) when the old address cannot be found.
rewrite_announced_addresses() {
  local new=$1 old file
  [[ $new =~ ^[0-9]+(\.[0-9]+){3}$ ]] || die "'$new' is not a public IPv4 address"
  old=$(announced_ipv4) || die "cannot read the announced address (external_rtp_ip) from $FREESWITCH_CONF/vars.xml"
  if [[ $old == "$new" ]]; then
    log "BigBlueButton already announces $new"
  else
    log "public IPv4 changed from $old to $new: rewriting what bbb-install wrote"
    while read -r file; do
      replace_address "$file" "$old" "$new"
    done < <(address_files)
  fi
  # The loopback copy FreeSWITCH binds to (dummy-nic.service may have added the old one earlier in this boot).
  ip addr del "$old/32" dev lo 2>/dev/null || true
  ip addr replace "$new/32" dev lo || die "cannot put $new on the loopback interface for FreeSWITCH"
  if [[ -f $BBB_ON_AWS_CONF/runtime.env ]]; then
    sed -i -E "s/^PUBLIC_IPV4=.*/PUBLIC_IPV4=$new/" "$BBB_ON_AWS_CONF/runtime.env"
  fi
  [[ $(announced_ipv4) == "$new" ]] || die "the rewrite left FreeSWITCH announcing $(announced_ipv4 || echo nothing)"
  mkdir -p "$BBB_ON_AWS_STATE_DIR"
  printf '%s %s\n' "$(cat "$BOOT_ID_FILE")" "$new" >"$BBB_ON_AWS_STATE_DIR/addresses"
}

# addresses_rewritten_this_boot: the stamp of rewrite_announced_addresses for the current boot.
addresses_rewritten_this_boot() {
  local boot stamp
  boot=$(cat "$BOOT_ID_FILE") || return 1
  stamp=$(cat "$BBB_ON_AWS_STATE_DIR/addresses" 2>/dev/null) || return 1
  [[ ${stamp%% *} == "$boot" ]]
}
