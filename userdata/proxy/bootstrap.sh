#!/bin/bash
# Bootstrap of the cluster proxy host (seed 001): nginx serving https://bbb-proxy.<domain>/bbb-<id>/html5client
# for every registered BBB server. TLS ends at the load balancer bbb-proxy.<domain> points to; this host
# (private subnet, no public IP) listens on port 80 for it. Safe to run again.
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/proxy/lib.sh"
LOG_TAG=proxy-bootstrap

main() {
  local asg
  require_params ENV_NAME DOMAIN BBB_HOST_DOMAIN READY_WAIT_SECONDS METRICS_NAMESPACE SYSTEM_LOG_GROUP APPLICATION_LOG_GROUP \
    CW_AGENT_KEY_FINGERPRINT
  log "bootstrap of the cluster proxy (environment $ENV_NAME) starts"
  mkdir -p "$BBB_ON_AWS_STATE_DIR" "$BBB_ON_AWS_LOG_DIR"
  retry 3 10 apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  apt_install nginx curl gnupg ca-certificates >/dev/null

  load_instance_identity private-only
  asg=$(autoscaling_group_name || true)
  write_runtime_env "INSTANCE_ID=$INSTANCE_ID" "PRIVATE_IPV4=$PRIVATE_IPV4" "AWS_REGION=$AWS_REGION" "ASG_NAME=$asg"

  mkdir -p "$(dirname "$NGINX_LOCATIONS")"
  # shellcheck disable=SC2153 # DOMAIN: from params.env (test_userdata_static checks the role's parameters define it)
  cat >"$NGINX_DIR/sites-available/bbb-proxy" <<CONF
# Written by bbb-on-aws: the cluster proxy. Unknown paths get 404: only registered BBB servers are proxied.
server {
  listen 80 default_server;
  listen [::]:80 default_server;
  server_name bbb-proxy.$DOMAIN;
  server_tokens off;
  location = /healthz { access_log off; return 200 "ok\n"; }
  include $(dirname "$NGINX_LOCATIONS")/*.conf;
  location / { return 404; }
}
CONF
  ln -sf "$NGINX_DIR/sites-available/bbb-proxy" "$NGINX_DIR/sites-enabled/bbb-proxy"
  rm -f "$NGINX_DIR/sites-enabled/default"
  nginx -t -q || die "nginx rejects the proxy configuration"
  systemctl enable nginx
  systemctl restart nginx
  retry 5 5 sync_proxy_locations "$ENV_NAME" "$BBB_HOST_DOMAIN" || die "cannot build the proxy locations from EC2"

  setup_host_logging proxy
  install_units "$BBB_ON_AWS_DIR/proxy/units" || true
  systemctl daemon-reload
  systemctl enable --now bbb-on-aws-proxy-sync.timer

  proxy_become_ready "$READY_WAIT_SECONDS" || exit 1
  log "bootstrap finished: the cluster proxy serves bbb-proxy.$DOMAIN"
}

main "$@"
