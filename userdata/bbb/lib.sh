# shellcheck shell=bash
# Steps of the BigBlueButton host bootstrap. Sourced by bootstrap.sh (and by the tests), never executed.
# Every path a step touches can be moved with an environment variable so the tests run the steps for real
# in a scratch directory.

BBB_ETC=${BBB_ETC:-/etc/bigbluebutton}
BBB_NGINX_DIR=${BBB_NGINX_DIR:-/usr/share/bigbluebutton/nginx}
DEFAULTS_DIR=${DEFAULTS_DIR:-/etc/default}
DEV_DIR=${DEV_DIR:-/dev}
DATA_MOUNT=${DATA_MOUNT:-/var/bigbluebutton}
FSTAB=${FSTAB:-/etc/fstab}
SPOOL_MOUNT=${SPOOL_MOUNT:-/mnt/scalelite-spool}
RAP_SCRIPTS_DIR=${RAP_SCRIPTS_DIR:-/usr/local/bigbluebutton/core/scripts}
GREENLIGHT_DIR=${GREENLIGHT_DIR:-/root/greenlight-v3}
BBB_USER=${BBB_USER:-bigbluebutton}
APT_ETC=${APT_ETC:-/etc/apt}
OS_RELEASE=${OS_RELEASE:-/etc/os-release}
BBB_GROUP=${BBB_GROUP:-bigbluebutton}
# A stand-in for the TURN secret on bbb-install's command line: the real one is written by
# write_turn_stun_servers, so it never appears in a process listing or in bbb-install's `set -x` log.
BBB_INSTALL_TURN_PLACEHOLDER=turn-secret-set-by-bbb-on-aws

# --- Data volume ------------------------------------------------------------------------------------------

# The disk holding /, e.g. /dev/nvme0n1.
root_disk() {
  local source parent
  source=$(findmnt -n -o SOURCE /) || return 1
  parent=$(lsblk -n -o PKNAME "$source" 2>/dev/null | head -n 1)
  if [[ -n $parent ]]; then
    printf '%s/%s\n' "$DEV_DIR" "$parent"
  else
    readlink -f "$source"
  fi
}

# find_data_device: the EBS data volume mapped as /dev/sdf. On Xen it is /dev/xvdf (or /dev/sdf); on Nitro
# it is an NVMe namespace whose by-id name carries the volume id; the root disk is the other one.
find_data_device() {
  local candidate root link target found=()
  for candidate in "$DEV_DIR/sdf" "$DEV_DIR/xvdf"; do
    if [[ -e $candidate ]]; then
      readlink -f "$candidate"
      return 0
    fi
  done
  root=$(root_disk) || return 1
  for link in "$DEV_DIR"/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol*; do
    [[ -e $link && $link != *-part* ]] || continue
    target=$(readlink -f "$link")
    [[ $target == "$(readlink -f "$root")" ]] && continue
    [[ " ${found[*]} " == *" $target "* ]] || found+=("$target")
  done
  if ((${#found[@]} == 1)); then
    printf '%s\n' "${found[0]}"
    return 0
  fi
  if ((${#found[@]} > 1)); then
    log "several EBS data volumes attached (${found[*]}); expected exactly one besides the root volume"
  fi
  return 1
}

# prepare_data_volume: formats the data volume once, mounts it on /var/bigbluebutton through fstab (nofail,
# so a lost volume does not stop the host from booting), and is a no-op when already done.
prepare_data_volume() {
  local device="" waited=0 uuid
  while ! device=$(find_data_device); do
    ((waited >= ${DATA_DEVICE_TIMEOUT:-180})) && die "no data volume appeared for /var/bigbluebutton" \
      "after ${waited}s (the launch template maps it as /dev/sdf)"
    sleep 5
    waited=$((waited + 5))
  done
  format_if_blank "$device"
  uuid=$(blkid -o value -s UUID "$device") || die "cannot read the filesystem UUID of $device"
  if ! grep -qE "^[^#]*[[:space:]]${DATA_MOUNT}[[:space:]]" "$FSTAB"; then
    printf 'UUID=%s %s ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2\n' "$uuid" "$DATA_MOUNT" >>"$FSTAB"
  fi
  mkdir -p "$DATA_MOUNT"
  if ! mountpoint -q "$DATA_MOUNT"; then
    mount "$DATA_MOUNT"
  fi
  log "data volume $device (UUID $uuid) mounted on $DATA_MOUNT"
}

# --- Names and DNS ----------------------------------------------------------------------------------------

# bbb_fqdn <instance id> <domain> <role>: the single host is the domain itself; a fleet server is
# bbb-<id>.<domain> with <domain> = BBB_HOST_DOMAIN (fleet.<domain>) (contract).
bbb_fqdn() {
  local id=$1 domain=$2 role=$3
  if [[ $role == single ]]; then
    printf '%s\n' "$domain"
  else
    printf 'bbb-%s.%s\n' "${id#i-}" "$domain"
  fi
}

# zone_nameservers <name>: the authoritative servers of the zone holding <name>, found by walking up.
# Asking them directly sidesteps negative caching in resolvers queried before the record existed.
zone_nameservers() {
  local name=$1 ns
  while [[ $name == *.* ]]; do
    ns=$(dig +short +time=3 +tries=2 NS "$name" | sed -n 's/\.$//p' | sort) || ns=""
    if [[ -n $ns ]]; then
      printf '%s\n' "$ns"
      return 0
    fi
    name=${name#*.}
  done
  return 1
}

# wait_for_dns <fqdn> <ip> <timeout s> [<interval s> <consecutive>]: until every authoritative server answers
# <ip> for <fqdn>, <consecutive> checks in a row, so Let's Encrypt's validation sees the same.
wait_for_dns() {
  local fqdn=$1 ip=$2 timeout=$3 interval=${4:-10} needed=${5:-3}
  local start streak=0 servers server answer ok
  start=$(date +%s)
  log "waiting until $fqdn resolves to $ip on its zone's name servers ($needed checks in a row, ${timeout}s max)"
  while true; do
    ok=1
    if servers=$(zone_nameservers "$fqdn"); then
      for server in $servers; do
        answer=$(dig +short +time=3 +tries=1 A "$fqdn" "@$server" | sort | tr '\n' ' ') || answer="(no answer)"
        if [[ $answer != "$ip " ]]; then
          ok=0
          log "  $server answers '${answer% }' for $fqdn"
          break
        fi
      done
    else
      ok=0
      log "  no name servers found for $fqdn yet"
    fi
    if ((ok)); then
      streak=$((streak + 1))
      ((streak >= needed)) && { log "$fqdn resolves to $ip"; return 0; }
    else
      streak=0
    fi
    if (($(date +%s) - start >= timeout)); then
      log "ERROR: $fqdn did not resolve to $ip within ${timeout}s; the launch handler creates the record"
      return 1
    fi
    sleep "$interval"
  done
}

# --- BigBlueButton install --------------------------------------------------------------------------------

# run_bbb_install <fqdn> <email> <turn host> <single: 0|1> [<provided certificate: 0|1>]: bbb-install v3.0
# with our TURN fleet instead of a local coturn. IP/INTERNAL_IP are handed over because bbb-install reads the
# public IP with IMDSv1, which this instance refuses. With a provided certificate (the fleet's, installed in
# /local/certs by certificate.sh) bbb-install runs with -d: no certbot, no Let's Encrypt request; it links
# /etc/letsencrypt/live/<fqdn>/{fullchain,privkey}.pem to /local/certs/ for nginx.
run_bbb_install() {
  local fqdn=$1 email=$2 turn_host=$3 single=$4 provided=${5:-0} script args
  script=$(mktemp --suffix=.sh)
  if ! retry 5 10 curl -fsSL -o "$script" "$BBB_INSTALL_URL"; then
    rm -f "$script"
    die "cannot download bbb-install from $BBB_INSTALL_URL"
  fi
  if [[ -n ${BBB_INSTALL_SHA256:-} ]]; then
    if ! printf '%s  %s\n' "$BBB_INSTALL_SHA256" "$script" | sha256sum -c --quiet - >/dev/null 2>&1; then
      rm -f "$script"
      die "bbb-install.sh does not match the pinned SHA-256 $BBB_INSTALL_SHA256"
    fi
  else
    log "bbb-install.sh is not pinned (sha256 $(sha256sum "$script" | cut -d' ' -f1)); set bbb_install_sha256 to pin"
  fi
  # -s before -c: bbb-install compares a -c host's DNS to this host when no -s was seen yet.
  args=(-v "$BBB_VERSION" -s "$fqdn")
  if ((provided)); then
    require_fleet_certificate  # certificate.sh
    args+=(-d)
  else
    args+=(-e "$email")
  fi
  args+=(-c "$turn_host:$BBB_INSTALL_TURN_PLACEHOLDER")
  ((single)) && args+=(-g)
  # bbb-install runs with `set -x`: its log holds Greenlight's and PostgreSQL's generated secrets, so it
  # stays on the host, root-only, and is not shipped to CloudWatch. On failure only bbb-install's own
  # messages ("bbb-install: ...") are repeated here.
  touch "$BBB_ON_AWS_LOG_DIR/bbb-install.log"
  chmod 0600 "$BBB_ON_AWS_LOG_DIR/bbb-install.log"
  log "running bbb-install ${args[*]} (output in $BBB_ON_AWS_LOG_DIR/bbb-install.log)"
  if ! IP=$PUBLIC_IPV4 INTERNAL_IP=$PRIVATE_IPV4 bash "$script" "${args[@]}" >>"$BBB_ON_AWS_LOG_DIR/bbb-install.log" 2>&1; then
    rm -f "$script"
    tail -n 200 "$BBB_ON_AWS_LOG_DIR/bbb-install.log" | grep -E '^bbb-install: ' | tail -n 10 >&2 || true
    die "bbb-install failed; see $BBB_ON_AWS_LOG_DIR/bbb-install.log on the host"
  fi
  rm -f "$script"
}

# apply_fleet_secret <secret>: the fleet-wide API secret (Scalelite and the handlers know it). On the single
# host Greenlight was configured by bbb-install with the random secret, so it gets the new one too. Values
# are compared inside bash, so a re-run that changes nothing neither shows the secret to `ps` nor restarts
# anything.
apply_fleet_secret() {
  local secret=$1 current
  current=$(bbb_api_secret || true)
  if [[ $current != "$secret" ]]; then
    bbb-conf --setsecret "$secret" >/dev/null 2>&1 || die "bbb-conf --setsecret failed"
  fi
  if [[ -f $GREENLIGHT_DIR/.env ]]; then
    current=$(sed -n 's/^BIGBLUEBUTTON_SECRET=//p' "$GREENLIGHT_DIR/.env" | tail -n 1)
    if [[ $current != "$secret" ]]; then
      set_kv "$GREENLIGHT_DIR/.env" BIGBLUEBUTTON_SECRET "$secret"
      docker compose -f "$GREENLIGHT_DIR/docker-compose.yml" up -d --force-recreate >/dev/null 2>&1 ||
        die "cannot restart Greenlight with the fleet secret"
    fi
  fi
}

# write_turn_stun_servers <secret> <domain> <ttl s>: BBB hands browsers TURN over UDP and TCP 3478 (turn.<domain>,
# weighted records over the TURN fleet) and TLS 443 (turns.<domain>, the NLB), with credentials valid <ttl>
# seconds. Readable by bbb-web only. Status 0 if the file changed.
write_turn_stun_servers() {
  local secret=$1 domain=$2 ttl=$3 tmp status=0
  [[ $secret =~ ^[A-Za-z0-9]+$ ]] || die "the TURN secret must be letters and digits only"
  [[ $ttl =~ ^[1-9][0-9]*$ ]] || die "the TURN credential lifetime must be a whole number of seconds, not '$ttl'"
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by bbb-on-aws: TURN relays of this deployment. -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
       http://www.springframework.org/schema/beans/spring-beans-2.5.xsd">
    <bean id="turn0" class="org.bigbluebutton.web.services.turn.TurnServer">
        <constructor-arg index="0" value="$secret"/>
        <constructor-arg index="1" value="turn:turn.$domain:3478"/>
        <constructor-arg index="2" value="$ttl"/>
    </bean>
    <bean id="turn1" class="org.bigbluebutton.web.services.turn.TurnServer">
        <constructor-arg index="0" value="$secret"/>
        <constructor-arg index="1" value="turn:turn.$domain:3478?transport=tcp"/>
        <constructor-arg index="2" value="$ttl"/>
    </bean>
    <bean id="turn2" class="org.bigbluebutton.web.services.turn.TurnServer">
        <constructor-arg index="0" value="$secret"/>
        <constructor-arg index="1" value="turns:turns.$domain:443?transport=tcp"/>
        <constructor-arg index="2" value="$ttl"/>
    </bean>
    <bean id="stunTurnService" class="org.bigbluebutton.web.services.turn.StunTurnService">
        <property name="stunServers">
            <set>
            </set>
        </property>
        <property name="turnServers">
            <set>
                <ref bean="turn0"/>
                <ref bean="turn1"/>
                <ref bean="turn2"/>
            </set>
        </property>
    </bean>
</beans>
EOF
  install_if_changed "$tmp" "$BBB_ETC/turn-stun-servers.xml" 0640 "root:$BBB_GROUP" || status=1
  rm -f "$tmp"
  return "$status"
}

# refresh_turn_secret <secret arn> <domain> <ttl s> <fqdn>: bbb-web issues TURN credentials with AWSCURRENT.
# bbb-web reads turn-stun-servers.xml only when it starts, and a restart loses the meetings it tracks, so a
# new version is applied at the first moment this server runs no meeting (the relays accept the old one until
# then). The server then tags itself bbb-on-aws:turn-secret=<version>@<unix time it stopped issuing the old
# one, 0 on the first write> (docs/host-contract.md): the relays retire the old secret a TTL after the last
# server switched. Status 1 on an API error (nothing changes).
refresh_turn_secret() {
  local arn=$1 domain=$2 ttl=$3 fqdn=$4 answer version value installed="" stopped=0
  local state="$BBB_ON_AWS_STATE_DIR/turn-secret-version"
  answer=$(aws secretsmanager get-secret-value --secret-id "$arn" --query '[VersionId,SecretString]' \
    --output text) || { log "cannot read the TURN secret; bbb-web keeps its credentials"; return 1; }
  read -r version value <<<"$answer"
  [[ $value =~ ^[A-Za-z0-9]{16,128}$ ]] || { log "the TURN secret is not 16-128 letters and digits"; return 1; }
  [[ -f $state ]] && installed=$(<"$state")
  if [[ ${installed%@*} == "$version" ]]; then
    return 0
  fi
  if [[ -n $installed ]]; then
    if systemctl is-active --quiet bbb-web && ! bbb_idle "$fqdn"; then
      log "TURN secret version $version waits until this server runs no meeting (bbb-web restarts to apply it)"
      return 0
    fi
    stopped=$(date +%s)
  fi
  if write_turn_stun_servers "$value" "$domain" "$ttl" && [[ -n $installed ]] &&
    systemctl is-active --quiet bbb-web; then
    systemctl restart bbb-web
  fi
  unset value
  retry 5 5 aws ec2 create-tags --resources "$INSTANCE_ID" \
    --tags "Key=bbb-on-aws:turn-secret,Value=$version@$stopped" ||
    { log "cannot tag $INSTANCE_ID with its TURN secret version (ec2:CreateTags)"; return 1; }
  printf '%s@%s\n' "$version" "$stopped" >"$state"
  log "bbb-web issues TURN credentials with secret version $version"
}

# bbb_meetings_xml <fqdn>: getMeetings from this server's own API (through nginx, pinned to this host).
bbb_meetings_xml() {
  local fqdn=$1 secret checksum
  secret=$(bbb_api_secret) || { log "no securitySalt in BBB's properties"; return 1; }
  # The checksum is sha256("getMeetings" + secret); printf is a builtin, so the secret stays off argv.
  checksum=$(printf 'getMeetings%s' "$secret" | sha256sum | cut -d' ' -f1)
  curl -fsS --max-time 10 --resolve "$fqdn:443:127.0.0.1" \
    "https://$fqdn/bigbluebutton/api/getMeetings?checksum=$checksum"
}

# bbb_idle <fqdn>: status 0 only when getMeetings answers SUCCESS with no meeting.
bbb_idle() {
  local xml
  xml=$(bbb_meetings_xml "$1") || return 1
  [[ $xml == *"<returncode>SUCCESS</returncode>"* && $xml != *"<meeting>"* ]]
}

# --- Recordings to Scalelite ------------------------------------------------------------------------------

# AWS's efs-utils apt repository (the one its efs-utils-installer.sh configures); not in Ubuntu's archive.
install_efs_utils() {
  local release keyring="$APT_ETC/keyrings/efs-utils.gpg" key
  command -v mount.efs >/dev/null && return 0
  # shellcheck source=/dev/null
  release=$(. "$OS_RELEASE" && printf '%s' "$VERSION_ID")
  key=$(mktemp)
  mkdir -p "$APT_ETC/keyrings" "$APT_ETC/sources.list.d"
  retry 5 5 curl -fsSL -o "$key" https://amazon-efs-utils.aws.com/efs-utils.gpg ||
    die "cannot download the efs-utils repository key"
  if grep -q 'BEGIN PGP' "$key"; then gpg --batch --yes --dearmor -o "$keyring" "$key"; else install -m 0644 "$key" "$keyring"; fi
  printf 'deb [signed-by=%s] https://amazon-efs-utils.aws.com/repo/deb/ubuntu/%s %s main\n' \
    "$keyring" "$release" "$release" >"$APT_ETC/sources.list.d/efs-utils.list"
  if ! retry 3 10 apt-get -o DPkg::Lock::Timeout=600 update -q || ! apt_install amazon-efs-utils; then
    die "cannot install amazon-efs-utils from AWS's repository"
  fi
  rm -f "$key"
}

# mount_spool <file system id> <access point id>: TLS (and IAM-authorised) mount through the spool access
# point, in fstab so it comes back after a reboot.
mount_spool() {
  local fs=$1 ap=$2 line
  line="$fs:/ $SPOOL_MOUNT efs _netdev,nofail,noresvport,tls,iam,accesspoint=$ap 0 0"
  mkdir -p "$SPOOL_MOUNT"
  if ! grep -qE "^[^#]*[[:space:]]${SPOOL_MOUNT}[[:space:]]" "$FSTAB"; then
    printf '%s\n' "$line" >>"$FSTAB"
  fi
  if ! mountpoint -q "$SPOOL_MOUNT"; then
    retry 10 15 mount "$SPOOL_MOUNT" || die "cannot mount the Scalelite spool $fs ($ap) on $SPOOL_MOUNT"
  fi
  log "Scalelite spool $fs/$ap mounted on $SPOOL_MOUNT (TLS)"
}

# install_scalelite_transfer <scalelite git tag>: Scalelite's post-publish script, pinned to a release.
install_scalelite_transfer() {
  local ref=$1 tmp
  tmp=$(mktemp)
  retry 5 10 curl -fsSL -o "$tmp" \
    "https://raw.githubusercontent.com/blindsidenetworks/scalelite/$ref/bigbluebutton/scalelite_post_publish.rb" ||
    die "cannot download scalelite_post_publish.rb at $ref"
  grep -q 'spool_dir' "$tmp" || die "scalelite_post_publish.rb at $ref does not look like the transfer script"
  mkdir -p "$RAP_SCRIPTS_DIR/post_publish"
  install -m 0755 -o root -g root "$tmp" "$RAP_SCRIPTS_DIR/post_publish/scalelite_post_publish.rb"
  cat >"$tmp" <<EOF
# Written by bbb-on-aws: recordings go to the Scalelite spool on EFS.
work_dir: $DATA_MOUNT/recording/scalelite
spool_dir: $SPOOL_MOUNT
extra_rsync_opts: []
EOF
  install -m 0644 -o root -g root "$tmp" "$RAP_SCRIPTS_DIR/scalelite.yml"
  rm -f "$tmp"
  getent group scalelite-spool >/dev/null || groupadd -g 2000 scalelite-spool
  usermod -a -G scalelite-spool "$BBB_USER"
  mkdir -p "$DATA_MOUNT/recording/scalelite"
  chown "$BBB_USER:$BBB_GROUP" "$DATA_MOUNT/recording/scalelite"
}

# --- Cluster proxy (seed 001): the HTML5 client served under https://<proxy>/<server id>/html5client -------

# patch_html5_nginx <server id>: prefixes every html5client location except @html5client and adds the guest
# lobby's locale redirect; running it twice changes nothing.
patch_html5_nginx() {
  local id=$1 file="$BBB_NGINX_DIR/bbb-html5.nginx"
  [[ -f $file ]] || die "$file not found: is BigBlueButton 3.0 installed?"
  # Prefix (=, ^~ or none) and regex (~ ^/...) locations; the line we add ourselves carries a marker.
  sed -i -E \
    -e "/bbb-on-aws/!s#^([[:space:]]*location[[:space:]]+(=[[:space:]]*|\\^~[[:space:]]+)?)/html5client#\\1/$id/html5client#" \
    -e "/bbb-on-aws/!s#^([[:space:]]*location[[:space:]]+~\\*?[[:space:]]+\\^)/html5client#\\1/$id/html5client#" "$file"
  if ! grep -q "bbb-on-aws: guest lobby" "$file"; then
    # shellcheck disable=SC2016 # $request_uri is nginx's variable
    printf '\nlocation =/html5client/locale { # bbb-on-aws: guest lobby locales come from this server\n  return 301 /%s$request_uri;\n}\n' "$id" >>"$file"
  fi
}

# apply_cluster_proxy <proxy host> <fqdn>: every BBB-side setting seed 001 lists.
apply_cluster_proxy() {
  local proxy=$1 fqdn=$2 id=${2%%.*} props="$BBB_ETC/bbb-web.properties"
  set_kv "$props" defaultHTML5ClientUrl "https://$proxy/$id/html5client"
  set_kv "$props" presentationBaseURL "https://$fqdn/bigbluebutton/presentation"
  set_kv "$props" accessControlAllowOrigin "https://$proxy"
  set_kv "$props" graphqlWebsocketUrl "wss://$fqdn/graphql"
  set_kv "$props" graphqlApiUrl "https://$fqdn/api/rest"
  python3 "$BBB_ON_AWS_DIR/bbb/cluster_proxy.py" --etc "$BBB_ETC" --proxy "$proxy" --fqdn "$fqdn" ||
    die "cannot write the cluster proxy YAML/JSON settings"
  mkdir -p "$SYSTEMD_DIR/bbb-html5.service.d"
  printf '[Service]\nEnvironment=ROOT_URL=https://127.0.0.1/%s/html5client\nEnvironment=DDP_DEFAULT_CONNECTION_URL=https://%s/%s/html5client\n' \
    "$id" "$fqdn" "$id" >"$SYSTEMD_DIR/bbb-html5.service.d/cluster.conf"
  patch_html5_nginx "$id"
  set_kv "$DEFAULTS_DIR/bbb-web" JDK_JAVA_OPTIONS \
    "\"-Dgrails.cors.enabled=true -Dgrails.cors.allowCredentials=true -Dgrails.cors.allowedOrigins=https://$proxy,https://$fqdn\""
  set_kv "$DEFAULTS_DIR/bbb-graphql-server" HASURA_GRAPHQL_CORS_DOMAIN "\"https://$proxy\""
  log "cluster proxy settings applied for https://$proxy/$id/html5client"
}

# restart_bigbluebutton_once: the one restart a bootstrap may do, after every setting is in place and
# before the host is ready; a host that already serves meetings is never restarted.
restart_bigbluebutton_once() {
  if [[ -f $BBB_ON_AWS_STATE_DIR/ready ]]; then
    log "this host is already serving meetings: not restarting BigBlueButton; changed settings take effect" \
      "after 'bbb-conf --restart' in a maintenance window"
    return 0
  fi
  systemctl daemon-reload
  log "restarting BigBlueButton to apply the fleet settings"
  bbb-conf --restart >>"$BBB_ON_AWS_LOG_DIR/bbb-conf.log" 2>&1 || die "bbb-conf --restart failed"
}

# --- Readiness --------------------------------------------------------------------------------------------

# api_answers_success <fqdn>: the public API through nginx and TLS (pinned to this host, not a DNS round trip).
api_answers_success() {
  local fqdn=$1 body
  body=$(curl -fsS --max-time 10 --resolve "$fqdn:443:127.0.0.1" "https://$fqdn/bigbluebutton/api") || return 1
  [[ $body == *"<returncode>SUCCESS</returncode>"* ]]
}

# wait_for_api <fqdn> <timeout s> [<interval s>]
wait_for_api() {
  local fqdn=$1 timeout=$2 interval=${3:-10} start
  start=$(date +%s)
  until api_answers_success "$fqdn"; do
    if (($(date +%s) - start >= timeout)); then
      log "ERROR: https://$fqdn/bigbluebutton/api did not answer SUCCESS within ${timeout}s"
      return 1
    fi
    sleep "$interval"
  done
  log "https://$fqdn/bigbluebutton/api answers SUCCESS"
}

# become_ready <fqdn> <timeout s> [<interval s>]: the ready tag only once the API answers SUCCESS.
become_ready() {
  wait_for_api "$@" || return 1
  tag_ready
}

# --- Metrics ----------------------------------------------------------------------------------------------

BBB_SERVLET_PROPERTIES=${BBB_SERVLET_PROPERTIES:-/usr/share/bbb-web/WEB-INF/classes/bigbluebutton.properties}

# bbb_api_secret: the securitySalt BBB actually uses (the /etc override wins over the packaged default).
bbb_api_secret() {
  local file value="" found
  for file in "$BBB_SERVLET_PROPERTIES" "$BBB_ETC/bbb-web.properties"; do
    [[ -f $file ]] || continue
    found=$(sed -n 's/^[[:space:]]*securitySalt[[:space:]]*=[[:space:]]*//p' "$file" | tail -n 1 | tr -d '\r ')
    [[ -n $found ]] && value=$found
  done
  [[ -n $value ]] || return 1
  printf '%s' "$value"
}
