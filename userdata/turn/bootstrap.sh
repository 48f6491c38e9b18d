#!/bin/bash
# Bootstrap of a TURN host running our relay (relay/ in the repository). The user-data stub unpacked this
# bundle into /opt/bbb-on-aws and wrote /etc/bbb-on-aws/params.env. Safe to run again.
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=turn-bootstrap

main() {
  local asg turn_secret wheel conf
  require_params ENV_NAME DOMAIN TURN_SECRET_ARN TURN_CREDENTIAL_TTL RELAY_WHEEL_BUCKET RELAY_WHEEL_KEY RELAY_WHEEL_FILENAME \
    MIN_PORT MAX_PORT LOCAL_PORT_RANGE TOTAL_QUOTA USER_QUOTA MAX_BPS DRAIN_TIMEOUT_SECONDS \
    READY_WAIT_SECONDS METRICS_NAMESPACE SYSTEM_LOG_GROUP APPLICATION_LOG_GROUP CW_AGENT_KEY_FINGERPRINT \
    ALLOCATIONS_METRIC LISTEN_PORT PROXY_PORT ADMIN_LISTEN
  log "bootstrap of a TURN host (environment $ENV_NAME) starts"
  mkdir -p "$BBB_ON_AWS_STATE_DIR" "$BBB_ON_AWS_LOG_DIR"
  retry 3 10 apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  # libbpf0: the relay's in-kernel forwarding path (kernel-offload) loads its program through it (ctypes).
  apt_install python3-venv curl gnupg ca-certificates libbpf0 >/dev/null

  load_instance_identity public
  asg=$(autoscaling_group_name) || die "cannot find this instance's Auto Scaling group (aws:autoscaling:groupName)"
  write_runtime_env "INSTANCE_ID=$INSTANCE_ID" "PUBLIC_IPV4=$PUBLIC_IPV4" "PRIVATE_IPV4=$PRIVATE_IPV4" \
    "AWS_REGION=$AWS_REGION" "ASG_NAME=$asg"

  tune_kernel "$LOCAL_PORT_RANGE" "$MIN_PORT" "$MAX_PORT"
  # A dedicated account: relay.conf is root-owned and group-readable (it holds no secret), the secret
  # files belong to the account, mode 0600.
  getent group "$RELAY_GROUP" >/dev/null || groupadd --system "$RELAY_GROUP"
  id -u "$RELAY_USER" >/dev/null 2>&1 ||
    useradd --system --gid "$RELAY_GROUP" --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$RELAY_USER"
  install -d -m 0750 -o root -g "$RELAY_GROUP" "$RELAY_ETC"

  turn_secret=$(get_secret "$TURN_SECRET_ARN") || exit 1
  write_relay_secrets "$turn_secret"
  unset turn_secret
  # Every version in use (AWSPENDING during a rotation, AWSPREVIOUS until the handoff is over).
  retry 5 5 refresh_relay_secrets "$TURN_SECRET_ARN" "$ENV_NAME" "$TURN_CREDENTIAL_TTL" ||
    die "cannot read the TURN secret's versions (check secretsmanager:DescribeSecret and ec2:DescribeInstances)"

  # The wheel keeps its own file name: pip reads the version and tags from it.
  wheel="$BBB_ON_AWS_STATE_DIR/$RELAY_WHEEL_FILENAME"
  retry 5 10 aws s3 cp --only-show-errors "s3://$RELAY_WHEEL_BUCKET/$RELAY_WHEEL_KEY" "$wheel" ||
    die "cannot download the relay wheel s3://$RELAY_WHEEL_BUCKET/$RELAY_WHEEL_KEY"
  install_relay "$wheel" "$BBB_ON_AWS_DIR/turn/relay-constraints.txt"

  conf=$(mktemp)
  render_relay_conf "turn.$DOMAIN" "$PRIVATE_IPV4" "$PUBLIC_IPV4" "$MIN_PORT" "$MAX_PORT" \
    "$TOTAL_QUOTA" "$USER_QUOTA" "$MAX_BPS" "$DRAIN_TIMEOUT_SECONDS" >"$conf"
  install_if_changed "$conf" "$RELAY_ETC/relay.conf" 0640 "root:$RELAY_GROUP" || true
  rm -f "$conf"

  # The relay starts with the current BBB servers as its only peers; an API failure here is fatal, later
  # ones just keep the last list.
  retry 5 5 sync_allowed_peers "$ENV_NAME" || die "cannot read this deployment's BBB servers from EC2"

  setup_host_logging turn
  install_units "$BBB_ON_AWS_DIR/turn/units" || true
  systemctl daemon-reload
  systemctl enable bbb-turn-relay.service
  if [[ -f $BBB_ON_AWS_STATE_DIR/ready ]] && systemctl is-active --quiet bbb-turn-relay.service; then
    systemctl reload bbb-turn-relay.service # a re-run never drops live allocations
  else
    systemctl restart bbb-turn-relay.service
  fi
  systemctl enable --now bbb-turn-relay-peers.timer bbb-turn-relay-secrets.timer bbb-on-aws-allocations-metric.timer
  # From the next boot on (a warm-pool wake): the new public IPv4 into relay.conf, then a fresh ready tag.
  systemctl enable bbb-on-aws-relay-address.service bbb-on-aws-relay-ready.service

  relay_become_ready "$PRIVATE_IPV4" "$READY_WAIT_SECONDS" || exit 1
  log "bootstrap finished: the relay serves turn.$DOMAIN from $PUBLIC_IPV4"
}

main "$@"
