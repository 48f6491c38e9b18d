#!/bin/bash
# Bootstrap of a BigBlueButton 3.0 host: a server of the scalable fleet (role bbb) or the single-shape host
# with Greenlight (role single). The user-data stub unpacked this bundle into /opt/bbb-on-aws and wrote
# /etc/bbb-on-aws/params.env. Safe to run again: finished steps are skipped, and a host that is already
# ready (serving meetings) is never restarted.
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/bbb/lib.sh"
# shellcheck source=data.sh
source "$BBB_ON_AWS_DIR/bbb/data.sh"
# shellcheck source=certificate.sh
source "$BBB_ON_AWS_DIR/bbb/certificate.sh"
LOG_TAG=bbb-bootstrap

main() {
  local single=0 provided=0 fqdn asg api_secret
  require_params ROLE ENV_NAME DOMAIN OPERATOR_EMAIL TURN_SECRET_ARN TURN_CREDENTIAL_TTL BBB_SECRET_ARN BBB_INSTALL_URL \
    BBB_VERSION DNS_WAIT_SECONDS READY_WAIT_SECONDS CLUSTER_PROXY METRICS_NAMESPACE SYSTEM_LOG_GROUP \
    APPLICATION_LOG_GROUP CW_AGENT_KEY_FINGERPRINT
  # shellcheck disable=SC2153 # ROLE: from params.env (test_userdata_static checks the role's parameters define it)
  [[ $ROLE == single ]] && single=1
  [[ $ROLE == single ]] || require_params SPOOL_FILE_SYSTEM_ID SPOOL_ACCESS_POINT_ID SCALELITE_REF
  log "bootstrap of a BigBlueButton host (role $ROLE, environment $ENV_NAME) starts"
  mkdir -p "$BBB_ON_AWS_STATE_DIR" "$BBB_ON_AWS_LOG_DIR"
  retry 3 10 apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  apt_install bind9-dnsutils curl gnupg ca-certificates python3-yaml rsync >/dev/null

  load_instance_identity public
  # shellcheck disable=SC2153 # DOMAIN: from params.env (test_userdata_static checks the role's parameters define it)
  fqdn=$(bbb_fqdn "$INSTANCE_ID" "${BBB_HOST_DOMAIN:-$DOMAIN}" "$ROLE")
  asg=$(autoscaling_group_name || true)
  write_runtime_env "INSTANCE_ID=$INSTANCE_ID" "PUBLIC_IPV4=$PUBLIC_IPV4" "PRIVATE_IPV4=$PRIVATE_IPV4" \
    "AWS_REGION=$AWS_REGION" "FQDN=$fqdn" "ASG_NAME=$asg"

  if ((single)); then
    prepare_single_data
  else
    prepare_data_volume
  fi
  wait_for_dns "$fqdn" "$PUBLIC_IPV4" "$DNS_WAIT_SECONDS" || exit 1

  api_secret=$(get_secret "$BBB_SECRET_ARN") || exit 1

  # The fleet's wildcard certificate (the single host keeps bbb-install's own Let's Encrypt certificate).
  if [[ -n ${CERTIFICATE_SECRET_ARN:-} ]]; then
    install_fleet_certificate "$CERTIFICATE_SECRET_ARN" "$fqdn" reload >/dev/null
    provided=1
  fi
  if [[ ! -f $BBB_ON_AWS_STATE_DIR/bbb-installed ]]; then
    run_bbb_install "$fqdn" "$OPERATOR_EMAIL" "turn.$DOMAIN" "$single" "$provided"
    touch "$BBB_ON_AWS_STATE_DIR/bbb-installed"
  fi
  ((single)) && restore_data_owner
  apply_fleet_secret "$api_secret"
  unset api_secret
  retry 5 5 refresh_turn_secret "$TURN_SECRET_ARN" "$DOMAIN" "$TURN_CREDENTIAL_TTL" "$fqdn" ||
    die "cannot apply the TURN secret (check secretsmanager:GetSecretValue and ec2:CreateTags on this instance)"

  if [[ $ROLE == bbb ]]; then
    install_efs_utils
    mount_spool "$SPOOL_FILE_SYSTEM_ID" "$SPOOL_ACCESS_POINT_ID"
    install_scalelite_transfer "$SCALELITE_REF"
  fi
  if [[ $CLUSTER_PROXY == 1 ]]; then
    apply_cluster_proxy "bbb-proxy.$DOMAIN" "$fqdn"
  fi

  setup_host_logging bbb
  install_units "$BBB_ON_AWS_DIR/bbb/units" || true
  systemctl daemon-reload
  systemctl enable --now bbb-on-aws-turn-secret.timer
  if ((provided)); then
    # At every boot before nginx (a woken warm-pool server), and every 6 h with an nginx reload.
    systemctl enable bbb-on-aws-certificate.service
    systemctl enable --now bbb-on-aws-certificate.timer
  fi
  if [[ -n $asg ]]; then
    systemctl enable --now bbb-on-aws-meetings-metric.timer
    # From the next boot on (a warm-pool wake): new public IPv4 into BBB's settings, then a fresh ready tag.
    systemctl enable bbb-on-aws-addresses.service bbb-on-aws-ready.service
  else
    log "not in an Auto Scaling group: the Meetings/Participants metrics are not published"
  fi

  restart_bigbluebutton_once
  become_ready "$fqdn" "$READY_WAIT_SECONDS" || exit 1
  log "bootstrap finished: https://$fqdn is ready"
}

main "$@"
