# shellcheck shell=bash
# The cluster proxy host (seed 001): nginx serves every BBB server's HTML5 client under one name, so
# browsers ask for camera and microphone once. Sourced by bootstrap.sh, sync.sh and the tests.
#
# Security (seed 001): one literal prefix location per *registered* server of this deployment, built from
# instance ids checked against a strict pattern; no regex location, no variable upstream, so the proxy can
# never be steered to another host. Upstream TLS is verified against the server's own name.

NGINX_DIR=${NGINX_DIR:-/etc/nginx}
NGINX_LOCATIONS=${NGINX_LOCATIONS:-$NGINX_DIR/bbb-on-aws/locations.conf}

# registered_bbb_servers <environment>: instance ids of this deployment's BBB fleet servers that are running
# and tagged ready (their DNS record exists), sorted. Fails when the EC2 API call fails.
registered_bbb_servers() {
  local env=$1 out
  out=$(aws ec2 describe-instances \
    --filters "Name=tag:bbb-on-aws:environment,Values=$env" "Name=tag:bbb-on-aws:role,Values=bbb" \
    "Name=tag-key,Values=bbb-on-aws:ready" "Name=instance-state-name,Values=running" \
    --query 'Reservations[].Instances[].InstanceId' --output text) || return 1
  tr -s ' \t' '\n' <<<"$out" | grep -E '^i-[0-9a-f]{8,17}$' | sort -u || true
}

# render_proxy_locations <domain> <instance id...>: the nginx locations for these servers.
render_proxy_locations() {
  local domain=$1 id sid host
  shift
  printf '# Written by bbb-on-aws proxy sync: one block per registered BBB server.\n'
  for id in "$@"; do
    [[ $id =~ ^i-[0-9a-f]{8,17}$ ]] || { log "ignoring malformed instance id '$id'"; continue; }
    sid="bbb-${id#i-}"
    host="$sid.$domain"
    cat <<EOF

location /$sid/html5client/ {
  proxy_pass https://$host/$sid/html5client/;
  proxy_ssl_server_name on;
  proxy_ssl_name $host;
  proxy_ssl_verify on;
  proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
  proxy_http_version 1.1;
  proxy_set_header Upgrade \$http_upgrade;
  proxy_set_header Connection "Upgrade";
}
location /$sid/bigbluebutton/api {
  proxy_pass https://$host/bigbluebutton/api;
  proxy_ssl_server_name on;
  proxy_ssl_name $host;
  proxy_ssl_verify on;
  proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
  proxy_http_version 1.1;
  proxy_set_header Upgrade \$http_upgrade;
  proxy_set_header Connection "Upgrade";
}
EOF
  done
}

# sync_proxy_locations <environment> <domain>: rewrites the locations when the fleet changed, checks the
# result with `nginx -t` and reloads; a failed API call or a config nginx rejects keeps the current one.
sync_proxy_locations() {
  local env=$1 domain=$2 ids tmp backup
  if ! ids=$(registered_bbb_servers "$env"); then
    log "DescribeInstances failed; keeping the current proxy locations"
    return 1
  fi
  tmp=$(mktemp)
  # shellcheck disable=SC2086 # one instance id per word
  render_proxy_locations "$domain" $ids >"$tmp"
  mkdir -p "$(dirname "$NGINX_LOCATIONS")"
  backup=$(mktemp)
  [[ -f $NGINX_LOCATIONS ]] && cp -p "$NGINX_LOCATIONS" "$backup"
  if install_if_changed "$tmp" "$NGINX_LOCATIONS" 0644 root:root; then
    if nginx -t -q 2>/dev/null; then
      systemctl reload nginx
      log "proxy now serves: $(tr '\n' ' ' <<<"${ids:-nothing}")"
    else
      log "nginx rejected the new locations; keeping the previous ones"
      if [[ -s $backup ]]; then cp -p "$backup" "$NGINX_LOCATIONS"; else rm -f "$NGINX_LOCATIONS"; fi
      rm -f "$tmp" "$backup"
      return 1
    fi
  fi
  rm -f "$tmp" "$backup"
}

# proxy_become_ready <timeout s> [<interval s>]: the ready tag once nginx answers its health check.
proxy_become_ready() {
  local timeout=$1 interval=${2:-5} start
  start=$(date +%s)
  until curl -fsS --max-time 3 -o /dev/null http://127.0.0.1/healthz; do
    if (($(date +%s) - start >= timeout)); then
      log "ERROR: nginx did not answer http://127.0.0.1/healthz within ${timeout}s"
      return 1
    fi
    sleep "$interval"
  done
  tag_ready
}
