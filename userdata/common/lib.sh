# shellcheck shell=bash
# Helpers shared by the BBB and TURN host bootstraps. Sourced, never executed.
#
# Everything here talks to the outside world through a handful of commands (curl, aws, systemctl, ...),
# so the tests run these functions for real with those commands replaced by shims on PATH.

IMDS_ENDPOINT=${IMDS_ENDPOINT:-http://169.254.169.254}
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
BBB_ON_AWS_STATE_DIR=${BBB_ON_AWS_STATE_DIR:-/var/lib/bbb-on-aws}
BBB_ON_AWS_LOG_DIR=${BBB_ON_AWS_LOG_DIR:-/var/log/bbb-on-aws}
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
LOGROTATE_DIR=${LOGROTATE_DIR:-/etc/logrotate.d}
CW_AGENT_DIR=${CW_AGENT_DIR:-/opt/aws/amazon-cloudwatch-agent}
IMDS_TOKEN=""

log() {
  printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${LOG_TAG:-bbb-on-aws}" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# retry <attempts> <delay seconds> <command...>: runs the command until it succeeds.
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      log "giving up after $n attempts: $1"
      return 1
    fi
    log "attempt $n/$attempts failed: $1; retrying in ${delay}s"
    n=$((n + 1))
    sleep "$delay"
  done
}

# require_params <NAME...>: every parameter the renderer must have written into params.env.
require_params() {
  local name missing=()
  for name in "$@"; do
    [[ -n ${!name:-} ]] || missing+=("$name")
  done
  ((${#missing[@]} == 0)) || die "$BBB_ON_AWS_CONF/params.env lacks ${missing[*]}: re-render the user data"
}

# --- Instance metadata (IMDSv2 only: the launch template disables IMDSv1) ---------------------------------

imds_refresh_token() {
  IMDS_TOKEN=$(curl -fsS --max-time 5 --retry 5 --retry-connrefused -X PUT \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" "$IMDS_ENDPOINT/latest/api/token") || return 1
  [[ -n $IMDS_TOKEN ]]
}

# imds_get <path below /latest/>: prints the value; fails when the item does not exist (e.g. no public IP).
imds_get() {
  local path=$1 attempt
  for attempt in 1 2; do
    if [[ -z $IMDS_TOKEN ]] || ((attempt == 2)); then
      imds_refresh_token || return 1
    fi
    if curl -fsS --max-time 5 --retry 3 -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" \
      "$IMDS_ENDPOINT/latest/$path"; then
      return 0
    fi
  done
  return 1
}

# load_instance_identity <public|private-only>: sets INSTANCE_ID, PUBLIC_IPV4, PRIVATE_IPV4 and AWS_REGION (unless
# the renderer already set it). BBB and TURN hosts need a public IPv4; `private-only` hosts (the cluster
# proxy) get an empty PUBLIC_IPV4.
load_instance_identity() {
  INSTANCE_ID=$(imds_get meta-data/instance-id) || die "cannot read the instance id from IMDSv2"
  PRIVATE_IPV4=$(imds_get meta-data/local-ipv4) || die "cannot read the private IPv4 from IMDSv2"
  if [[ $1 == private-only ]]; then
    PUBLIC_IPV4=$(imds_get meta-data/public-ipv4 2>/dev/null || true)
  else
    PUBLIC_IPV4=$(imds_get meta-data/public-ipv4) ||
      die "this instance has no public IPv4: launch it in a public subnet with a public IP"
  fi
  if [[ -z ${AWS_REGION:-} ]]; then
    AWS_REGION=$(imds_get meta-data/placement/region) || die "cannot read the region from IMDSv2"
  fi
  export AWS_REGION AWS_DEFAULT_REGION=$AWS_REGION
  log "instance $INSTANCE_ID: public ${PUBLIC_IPV4:-none}, private $PRIVATE_IPV4, region $AWS_REGION"
}

# The instance's Auto Scaling group: instance metadata tags when enabled, else DescribeTags.
autoscaling_group_name() {
  local name
  if name=$(imds_get "meta-data/tags/instance/aws:autoscaling:groupName" 2>/dev/null) && [[ -n $name ]]; then
    printf '%s\n' "$name"
    return 0
  fi
  name=$(aws ec2 describe-tags --filters "Name=resource-id,Values=$INSTANCE_ID" \
    "Name=key,Values=aws:autoscaling:groupName" --query 'Tags[0].Value' --output text) || return 1
  [[ -n $name && $name != None ]] || return 1
  printf '%s\n' "$name"
}

# --- Packages and tools -----------------------------------------------------------------------------------

apt_install() {
  DEBIAN_FRONTEND=noninteractive retry 5 15 apt-get -o DPkg::Lock::Timeout=600 -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install "$@"
}

# AWS CLI v2 from the snap store (Canonical's and AWS's channel, no GitHub); apt's v1 as fallback.
install_aws_cli() {
  command -v aws >/dev/null && return 0
  if command -v snap >/dev/null; then
    snap wait system seed.loaded || true
    if retry 3 10 snap install aws-cli --classic; then
      export PATH="$PATH:/snap/bin"
      command -v aws >/dev/null && return 0
    fi
  fi
  log "snap install of the AWS CLI failed; falling back to apt's awscli"
  retry 3 10 apt-get -o DPkg::Lock::Timeout=600 update -q && apt_install awscli
}

# --- Secrets ----------------------------------------------------------------------------------------------

# get_secret <arn>: prints the SecretString. Callers capture it into a variable; it never reaches a file,
# the log or a command line unless a step needs it there.
get_secret() {
  local value
  value=$(retry 5 5 aws secretsmanager get-secret-value --secret-id "$1" --query SecretString \
    --output text) || die "cannot read secret $1 (check the instance role's secretsmanager:GetSecretValue)"
  [[ $value =~ ^[A-Za-z0-9]{16,128}$ ]] ||
    die "secret $1 must be 16-128 letters and digits (the stack generates 40 alphanumerics)"
  printf '%s' "$value"
}

# --- Files ------------------------------------------------------------------------------------------------

# install_if_changed <source> <dest> <mode> <owner:group>: atomic replace; status 0 if dest changed.
install_if_changed() {
  local src=$1 dest=$2 mode=$3 owner=$4 tmp
  if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
    return 1
  fi
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")
  cat "$src" >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$dest"
}

# set_kv <file> <key> <value>: sets `key=value` in a properties/env file, replacing any existing line.
set_kv() {
  local file=$1 key=$2 value=$3 tmp
  tmp=$(mktemp)
  if [[ -f $file ]]; then
    grep -v -E "^[[:space:]]*${key//./\\.}[[:space:]]*=" "$file" >"$tmp" || true
  fi
  printf '%s=%s\n' "$key" "$value" >>"$tmp"
  if [[ -f $file ]]; then
    chmod --reference="$file" "$tmp"
    chown --reference="$file" "$tmp"
  else
    chmod 0644 "$tmp"
  fi
  mv -f "$tmp" "$file"
}

# --- Tags -------------------------------------------------------------------------------------------------

# The only tag a host writes, on itself only (see docs/host-contract.md).
tag_ready() {
  local now
  now=$(date +%s)
  retry 5 5 aws ec2 create-tags --resources "$INSTANCE_ID" --tags "Key=bbb-on-aws:ready,Value=$now" ||
    die "cannot tag $INSTANCE_ID ready (check ec2:CreateTags on the instance itself)"
  mkdir -p "$BBB_ON_AWS_STATE_DIR"
  printf '%s\n' "$now" >"$BBB_ON_AWS_STATE_DIR/ready"
  log "tagged $INSTANCE_ID bbb-on-aws:ready=$now"
}

# --- CloudWatch agent -------------------------------------------------------------------------------------

CW_AGENT_CTL=$CW_AGENT_DIR/bin/amazon-cloudwatch-agent-ctl

# install_cloudwatch_agent <pinned key fingerprint>: AWS's .deb from the regional bucket, signature checked.
install_cloudwatch_agent() {
  local fingerprint=$1 arch base dir actual
  [[ -x $CW_AGENT_CTL ]] && return 0
  arch=$(dpkg --print-architecture)
  base="https://amazoncloudwatch-agent-$AWS_REGION.s3.$AWS_REGION.amazonaws.com"
  dir=$(mktemp -d)
  if ! retry 5 5 curl -fsSL -o "$dir/agent.deb" "$base/ubuntu/$arch/latest/amazon-cloudwatch-agent.deb" ||
    ! retry 5 5 curl -fsSL -o "$dir/agent.deb.sig" "$base/ubuntu/$arch/latest/amazon-cloudwatch-agent.deb.sig" ||
    ! retry 5 5 curl -fsSL -o "$dir/agent.gpg" https://amazoncloudwatch-agent.s3.amazonaws.com/assets/amazon-cloudwatch-agent.gpg; then
    die "cannot download the CloudWatch agent from $base"
  fi
  mkdir -m 0700 "$dir/gnupg"
  if ! verify_signed_file "$dir/gnupg" "$dir/agent.gpg" "$fingerprint" "$dir/agent.deb.sig" "$dir/agent.deb"; then
    rm -rf "$dir"
    die "the CloudWatch agent package is not signed by key $fingerprint (see above); if AWS rotated its key," \
      "check the new one against the CloudWatch documentation and set cloudwatch_agent_key_fingerprint"
  fi
  DEBIAN_FRONTEND=noninteractive dpkg -i -E "$dir/agent.deb" >/dev/null
  rm -rf "$dir"
}

# verify_signed_file <gnupg home> <key file> <fingerprint> <signature> <file>: the key has exactly this
# fingerprint and its signature over the file verifies. Public keys need no gpg-agent, so none is started
# (an agent also fails outright when the homedir path is too long for its socket).
verify_signed_file() {
  local home=$1 key=$2 fingerprint=$3 signature=$4 file=$5 actual status=0
  if ! gpg --batch --quiet --no-autostart --homedir "$home" --import "$key" 2>/dev/null; then
    log "cannot import the signing key $key"
    status=1
  else
    actual=$(gpg --batch --no-autostart --homedir "$home" --with-colons --fingerprint | awk -F: '$1 == "fpr" {print $10; exit}')
    if [[ $actual != "$fingerprint" ]]; then
      log "signing key fingerprint is $actual, expected $fingerprint"
      status=1
    elif ! gpg --batch --quiet --no-autostart --homedir "$home" --verify "$signature" "$file" 2>/dev/null; then
      log "the package signature does not verify"
      status=1
    fi
  fi
  gpgconf --homedir "$home" --kill all 2>/dev/null || true
  return "$status"
}

# configure_cloudwatch_agent <config json>: (re)loads the agent with this config and starts it.
configure_cloudwatch_agent() {
  local config=$1
  install -m 0644 -o root -g root "$config" "$CW_AGENT_DIR/etc/bbb-on-aws.json"
  "$CW_AGENT_CTL" -a fetch-config -m ec2 -s -c "file:$CW_AGENT_DIR/etc/bbb-on-aws.json" >/dev/null
}

# --- Host plumbing ----------------------------------------------------------------------------------------

# write_runtime_env <name=value...>: what the bootstrap discovered, for the timers (sourced, %q-quoted).
write_runtime_env() {
  local pair tmp
  tmp=$(mktemp)
  for pair in "$@"; do
    printf '%s=%q\n' "${pair%%=*}" "${pair#*=}" >>"$tmp"
  done
  install_if_changed "$tmp" "$BBB_ON_AWS_CONF/runtime.env" 0644 root:root || true
  rm -f "$tmp"
}

# install_units <directory>: copies its unit files into systemd's directory; status 0 if any changed.
install_units() {
  local unit changed=1
  for unit in "$1"/*.service "$1"/*.timer; do
    [[ -e $unit ]] || continue
    if install_if_changed "$unit" "$SYSTEMD_DIR/$(basename "$unit")" 0644 root:root; then
      changed=0
    fi
  done
  return "$changed"
}

# setup_host_logging <bbb|turn|proxy>: journal export to a file, log rotation, CloudWatch agent with the stack's
# log groups and namespace.
setup_host_logging() {
  local role=$1 config
  python3 "$BBB_ON_AWS_DIR/common/cw_agent_config.py" --role "$role" --journal-units \
    >"$BBB_ON_AWS_CONF/journal-export.env"
  install_units "$BBB_ON_AWS_DIR/common/units" || true
  cat >"$LOGROTATE_DIR/bbb-on-aws" <<'EOF'
/var/log/bbb-on-aws/*.log {
  weekly
  rotate 4
  compress
  delaycompress
  missingok
  notifempty
  copytruncate
}
EOF
  systemctl daemon-reload
  systemctl enable --now bbb-on-aws-journal-export.service
  install_cloudwatch_agent "$CW_AGENT_KEY_FINGERPRINT"
  config=$(mktemp)
  python3 "$BBB_ON_AWS_DIR/common/cw_agent_config.py" --role "$role" --namespace "$METRICS_NAMESPACE" \
    --system-log-group "$SYSTEM_LOG_GROUP" --application-log-group "$APPLICATION_LOG_GROUP" >"$config"
  configure_cloudwatch_agent "$config"
  rm -f "$config"
  log "CloudWatch agent shipping logs to $SYSTEM_LOG_GROUP and $APPLICATION_LOG_GROUP"
}
