#!/bin/bash
# Every boot after the first (a warm-pool relay woken by Auto Scaling, or a reboot), run by two units:
#   address  bbb-on-aws-relay-address.service, before bbb-turn-relay.service: relay.conf's external-ip (the
#            address XOR-RELAYED-ADDRESS announces) follows the new public IPv4; the private address, which
#            the relay listens on, survives a stop/start.
#   ready    bbb-on-aws-relay-ready.service, after the relay: /readyz and STUN answer, and relay.conf announces
#            this boot's address, then the ready tag is renewed (the launch handler waits for a tag newer than
#            the instance's start before it adds the relay to turn.<domain>).
# The first boot is the bootstrap's (user data): it writes relay.conf, installs these units and tags itself.
# shellcheck source-path=SCRIPTDIR disable=SC2153 # UPPER_CASE values come from params.env/runtime.env
set -euo pipefail
umask 022
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/params.env"
# shellcheck source=../common/lib.sh
source "$BBB_ON_AWS_DIR/common/lib.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=bbb-relay-on-boot

main() {
  local mode=${1:-} conf
  require_params READY_WAIT_SECONDS
  conf="$RELAY_ETC/relay.conf"
  [[ -f $conf ]] || { log "first boot: the bootstrap writes $conf"; return 0; }
  load_instance_identity public
  case $mode in
    address)
      if grep -qx "external-ip=$PUBLIC_IPV4" "$conf"; then
        log "the relay already announces $PUBLIC_IPV4"
      else
        sed -i -E "s/^external-ip=.*/external-ip=$PUBLIC_IPV4/" "$conf"
        grep -qx "external-ip=$PUBLIC_IPV4" "$conf" || die "$conf has no external-ip line to rewrite"
        log "relay.conf: external-ip=$PUBLIC_IPV4"
      fi
      if [[ -f $BBB_ON_AWS_CONF/runtime.env ]]; then
        sed -i -E "s/^PUBLIC_IPV4=.*/PUBLIC_IPV4=$PUBLIC_IPV4/" "$BBB_ON_AWS_CONF/runtime.env"
      fi
      ;;
    ready)
      grep -qx "external-ip=$PUBLIC_IPV4" "$conf" || die "relay.conf does not announce $PUBLIC_IPV4: not ready"
      # A secret rotated while the relay slept: accepted (SIGHUP) before the ready tag puts it in turn.<domain>.
      retry 5 5 refresh_relay_secrets "$TURN_SECRET_ARN" "$ENV_NAME" "$TURN_CREDENTIAL_TTL" ||
        die "cannot read the TURN secret's versions: not ready"
      relay_become_ready "$PRIVATE_IPV4" "$READY_WAIT_SECONDS"
      ;;
    *) die "usage: on_boot.sh address|ready" ;;
  esac
}

main "$@"
