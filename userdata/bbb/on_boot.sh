#!/bin/bash
# Every boot after the first (a warm-pool server woken by Auto Scaling, or a reboot), run by two units:
#   addresses  bbb-on-aws-addresses.service, ordered before FreeSWITCH, bbb-webrtc-sfu, nginx and bbb-web:
#              BBB's announced media addresses follow the new public IPv4 before BBB accepts a meeting.
#   ready      bbb-on-aws-ready.service, after BBB: once the API answers SUCCESS through nginx and TLS, and only
#              if this boot's rewrite succeeded, the ready tag is renewed; the launch handler waits for a tag
#              newer than the instance's start before it registers the server in Scalelite.
# Both apply a TURN secret rotated while the server slept (refresh_turn_secret: the server has no meeting yet).
# The first boot is the bootstrap's (user data): it installs these units and does both itself.
# shellcheck source-path=SCRIPTDIR disable=SC2153 # UPPER_CASE values come from params.env/runtime.env
set -euo pipefail
umask 022
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/params.env"
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/runtime.env"
# shellcheck source=../common/lib.sh
source "$BBB_ON_AWS_DIR/common/lib.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/bbb/lib.sh"
# shellcheck source=addresses.sh
source "$BBB_ON_AWS_DIR/bbb/addresses.sh"
LOG_TAG=bbb-on-boot

main() {
  local mode=${1:-}
  require_params READY_WAIT_SECONDS
  [[ -f $BBB_ON_AWS_STATE_DIR/bbb-installed ]] || { log "first boot: the bootstrap does this"; return 0; }
  case $mode in
    addresses)
      load_instance_identity public
      rewrite_announced_addresses "$PUBLIC_IPV4"
      # A secret rotated while the server slept: bbb-web, not started yet, starts with the current one.
      refresh_turn_secret "$TURN_SECRET_ARN" "$DOMAIN" "$TURN_CREDENTIAL_TTL" "$FQDN" ||
        log "the TURN secret is applied before the ready tag instead"
      ;;
    ready)
      addresses_rewritten_this_boot || die "the announced addresses were not rewritten in this boot: not ready"
      export AWS_REGION AWS_DEFAULT_REGION=$AWS_REGION
      # Never ready while bbb-web would hand out credentials made with a secret the relays may have retired.
      retry 5 5 refresh_turn_secret "$TURN_SECRET_ARN" "$DOMAIN" "$TURN_CREDENTIAL_TTL" "$FQDN" ||
        die "cannot apply the current TURN secret: not ready"
      become_ready "$FQDN" "$READY_WAIT_SECONDS"
      ;;
    *) die "usage: on_boot.sh addresses|ready" ;;
  esac
}

main "$@"
