# shellcheck shell=bash
# The fleet's wildcard certificate on a BBB server (docs/host-contract.md). The certificate issuer Lambda
# keeps it in Secrets Manager; this step installs it where `bbb-install -d` expects a provided certificate
# (/local/certs/{fullchain,privkey}.pem, which bbb-install links from /etc/letsencrypt/live/<fqdn>/ for
# nginx), and the refresh timer runs it again so a renewed certificate reaches nginx by a reload: no BBB
# restart, no meeting ended. Sourced by bootstrap.sh, refresh_certificate.sh and the tests, never executed.
#
# /local/certs is a symlink to a directory per certificate serial, switched atomically (rename of a new
# symlink), so nginx never sees a new chain with an old key.

CERT_LINK=${CERT_LINK:-/local/certs}
CERT_STORE=${CERT_STORE:-/var/lib/bbb-on-aws/certs}
# Certificates are kept this many (the current one and its predecessors) for a manual roll-back.
CERT_KEEP=${CERT_KEEP:-3}

# split_certificate_secret <secret json file> <dir>: writes <dir>/{fullchain,privkey}.pem and prints the
# serial; fails naming the missing key. Python reads the file, so no PEM ever reaches a command line.
split_certificate_secret() {
  python3 - "$1" "$2" <<'EOF'
import json, os, re, sys
source, target = sys.argv[1], sys.argv[2]
try:
    data = json.load(open(source))
except ValueError:
    sys.exit("the certificate secret is not JSON: has the issuer run yet?")
missing = [key for key in ("fullchain", "privateKey", "serial") if not isinstance(data.get(key), str)]
if missing:
    sys.exit(f"the certificate secret has no {', '.join(missing)}: has the issuer run yet?")
if not re.fullmatch(r"[0-9a-f]{1,40}", data["serial"]):
    sys.exit(f"the certificate secret's serial {data['serial']!r} is not hexadecimal")
for name, key, mode in (("fullchain.pem", "fullchain", 0o644), ("privkey.pem", "privateKey", 0o600)):
    fd = os.open(os.path.join(target, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(data[key].strip() + "\n")
print(data["serial"])
EOF
}

# check_certificate_pair <dir> <fqdn>: the chain is valid now, its key is <dir>/privkey.pem and it names
# <fqdn> (exactly or by the wildcard of its parent).
check_certificate_pair() {
  local dir=$1 fqdn=$2 cert_key key_key sans
  openssl x509 -in "$dir/fullchain.pem" -noout -checkend 0 >/dev/null ||
    { log "the certificate in the secret has expired (or is not a PEM certificate)"; return 1; }
  cert_key=$(openssl x509 -in "$dir/fullchain.pem" -noout -pubkey) || return 1
  key_key=$(openssl pkey -in "$dir/privkey.pem" -pubout) ||
    { log "the private key in the secret cannot be read"; return 1; }
  [[ $cert_key == "$key_key" ]] || { log "the certificate and the private key in the secret do not match"; return 1; }
  sans=$(openssl x509 -in "$dir/fullchain.pem" -noout -ext subjectAltName) || return 1
  if [[ $sans != *"DNS:$fqdn"* && $sans != *"DNS:*.${fqdn#*.}"* ]]; then
    log "the certificate in the secret does not name $fqdn ($(tr -d '\n' <<<"$sans" | sed 's/  */ /g'))"
    return 1
  fi
}

# install_fleet_certificate <secret arn> <fqdn> [reload]: installs the certificate from the secret when it
# differs from the one in use and prints "installed", else "unchanged"; with "reload", nginx is checked and
# reloaded afterwards (the previous certificate is put back if nginx refuses the new one). Runs in a
# subshell so the scratch copy of the key is removed however it ends; a problem is fatal (die).
install_fleet_certificate() (
  local arn=$1 fqdn=$2 reload=${3:-} work serial target previous=""
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $work now
  trap "rm -rf '$work'" EXIT
  retry 5 5 aws secretsmanager get-secret-value --secret-id "$arn" --query SecretString --output text \
    >"$work/secret.json" ||
    die "cannot read the fleet certificate secret $arn (check the instance role's secretsmanager:GetSecretValue)"
  serial=$(split_certificate_secret "$work/secret.json" "$work") || die "fleet certificate secret $arn is unusable"
  check_certificate_pair "$work" "$fqdn" || die "fleet certificate $serial from $arn cannot serve $fqdn"
  target="$CERT_STORE/$serial"
  if [[ -L $CERT_LINK ]]; then
    previous=$(readlink "$CERT_LINK")
  elif [[ -e $CERT_LINK ]]; then
    die "$CERT_LINK exists and is not the link this step manages; move it away"
  fi
  if [[ $previous == "$target" ]] && cmp -s "$work/fullchain.pem" "$target/fullchain.pem" &&
    cmp -s "$work/privkey.pem" "$target/privkey.pem"; then
    echo unchanged
    return 0
  fi
  mkdir -p "$CERT_STORE" "$(dirname "$CERT_LINK")"
  chmod 0700 "$CERT_STORE"
  rm -rf "$target.new"
  mkdir -m 0700 "$target.new"
  install -m 0644 -o root -g root "$work/fullchain.pem" "$target.new/fullchain.pem"
  install -m 0600 -o root -g root "$work/privkey.pem" "$target.new/privkey.pem"
  rm -rf "$target"
  mv "$target.new" "$target"
  switch_certificate_link "$target"
  if [[ $reload == reload ]] && ! reload_nginx; then
    if [[ -n $previous && -d $previous ]]; then
      switch_certificate_link "$previous"
      reload_nginx || true
    fi
    die "nginx refused fleet certificate $serial; the previous certificate stays in use"
  fi
  prune_certificates "$target" "$previous"
  log "fleet certificate $serial installed for $fqdn ($(openssl x509 -in "$target/fullchain.pem" -noout -enddate))"
  echo installed
)

# require_fleet_certificate: the pair bbb-install -d links nginx to is in place.
require_fleet_certificate() {
  [[ -f $CERT_LINK/fullchain.pem && -f $CERT_LINK/privkey.pem ]] ||
    die "no certificate in $CERT_LINK for bbb-install -d; install_fleet_certificate runs first"
}

# switch_certificate_link <dir>: points /local/certs at <dir> with one rename (atomic for readers).
switch_certificate_link() {
  ln -sfn "$1" "$CERT_LINK.new"
  mv -T "$CERT_LINK.new" "$CERT_LINK"
}

# reload_nginx: only when nginx runs (at the first boot bbb-install has not installed it yet).
reload_nginx() {
  systemctl is-active --quiet nginx || return 0
  nginx -t -q || return 1
  systemctl reload nginx
}

# prune_certificates <current> <previous>: keeps the newest CERT_KEEP serials, always these two.
prune_certificates() {
  local current=$1 previous=$2 dir kept=0
  while IFS= read -r dir; do
    [[ $dir == "$current" || $dir == "$previous" ]] && { kept=$((kept + 1)); continue; }
    if ((kept >= CERT_KEEP)); then rm -rf "$dir"; else kept=$((kept + 1)); fi
  done < <(find "$CERT_STORE" -mindepth 1 -maxdepth 1 -type d ! -name '*.new' -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
}
