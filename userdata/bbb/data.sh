# shellcheck shell=bash
# The single host's data volume: Greenlight (its PostgreSQL and Redis data, .env, compose file), the
# recordings (/var/bigbluebutton) and the TLS certificates live on one EBS volume that outlives the
# instance. The launch automation attaches it (same AZ), or a copy of it / its newest snapshot (another AZ);
# see lambdas/single_data/index.py. Sourced by bootstrap.sh after lib.sh (and by the tests), never executed.

SINGLE_DATA_MOUNT=${SINGLE_DATA_MOUNT:-/srv/bbb-on-aws-data}
LETSENCRYPT_DIR=${LETSENCRYPT_DIR:-/etc/letsencrypt}
# What lives on the volume: <directory on the volume> <where the host expects it>.
single_data_binds() {
  printf '%s %s\n' bigbluebutton "$DATA_MOUNT" greenlight-v3 "$GREENLIGHT_DIR" letsencrypt "$LETSENCRYPT_DIR"
}

# volume_is_blank <device>: true only when no filesystem or partition table is found (blkid's low-level
# probe says "nothing", exit 2) AND the first MiB reads as zeros, as a never-written EBS volume does. Any
# doubt (a probe error, an unknown signature, a non-zero byte) counts as data.
volume_is_blank() {
  local device=$1 rc=0
  blkid -p "$device" >/dev/null 2>&1 || rc=$?
  ((rc == 2)) || return 1
  cmp -s -n 1048576 "$device" /dev/zero
}

# format_if_blank <device>: mkfs.ext4 on a blank volume only; never on one that holds anything.
format_if_blank() {
  local device=$1 type
  type=$(blkid -o value -s TYPE "$device" 2>/dev/null || true)
  if [[ $type == ext4 ]]; then
    return 0
  fi
  if [[ -n $type ]]; then
    die "data volume $device holds a $type filesystem, not ext4: not touching it (check it by hand)"
  fi
  if ! volume_is_blank "$device"; then
    die "data volume $device is not blank but has no filesystem blkid recognises: not formatting it" \
      "(a restore still loading, or damaged data: check it by hand)"
  fi
  log "formatting blank data volume $device (ext4)"
  mkfs.ext4 -q -L bbbdata "$device"
}

# fstab_entry <mount point> <line>: adds the line unless fstab already mounts something there.
fstab_entry() {
  local target=$1 line=$2
  grep -qE "^[^#]*[[:space:]]${target}[[:space:]]" "$FSTAB" || printf '%s\n' "$line" >>"$FSTAB"
}

# prepare_single_data: mount the volume on $SINGLE_DATA_MOUNT by UUID, then bind its directories where
# bbb-install, BBB, Greenlight and certbot expect them (before bbb-install runs: a replacement host finds
# Greenlight's .env and database, and a certificate that is not due, and keeps them). Idempotent.
prepare_single_data() {
  local device="" waited=0 uuid sub target
  while ! device=$(find_data_device); do
    ((waited >= ${DATA_DEVICE_TIMEOUT:-5400})) && die "no data volume was attached after ${waited}s" \
      "(the launch automation attaches it; see the launch execution of this instance)"
    sleep 10
    waited=$((waited + 10))
  done
  format_if_blank "$device"
  uuid=$(blkid -o value -s UUID "$device") || die "cannot read the filesystem UUID of $device"
  fstab_entry "$SINGLE_DATA_MOUNT" "UUID=$uuid $SINGLE_DATA_MOUNT ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2"
  mkdir -p "$SINGLE_DATA_MOUNT"
  mountpoint -q "$SINGLE_DATA_MOUNT" || mount "$SINGLE_DATA_MOUNT"
  while read -r sub target; do
    mkdir -p "$SINGLE_DATA_MOUNT/$sub" "$target"
    fstab_entry "$target" \
      "$SINGLE_DATA_MOUNT/$sub $target none bind,nofail,x-systemd.requires-mounts-for=$SINGLE_DATA_MOUNT 0 0"
    mountpoint -q "$target" || mount "$target"
  done < <(single_data_binds)
  log "data volume $device (UUID $uuid) mounted on $SINGLE_DATA_MOUNT; $(single_data_binds | tr '\n' ' ')"
}

# restore_data_owner: a replacement host's packages may give bigbluebutton another uid than the host that
# wrote the recordings; files whose owner no longer exists are given back to bigbluebutton.
restore_data_owner() {
  find "$DATA_MOUNT" -xdev \( -nouser -o -nogroup \) -exec chown "$BBB_USER:$BBB_GROUP" {} +
}
