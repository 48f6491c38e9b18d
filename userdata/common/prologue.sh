# shellcheck shell=bash
# The opening every host script shares (the three bootstraps and the timers' scripts), sourced first:
#   source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh" [with-runtime]
# Strict mode; files readable by all unless installed otherwise; HOME and the snap tools (the AWS CLI) under
# cloud-init and systemd alike; the install and configuration directories (moved by the tests); the parameters
# the user data wrote; with `with-runtime`, what the bootstrap discovered (runtime.env, read by the timers); the
# common library. Each script then sources its role's library itself, so that shellcheck follows it.
set -euo pipefail
umask 022
export HOME=${HOME:-/root} PATH="$PATH:/snap/bin"
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/params.env"
if [[ ${1:-} == with-runtime ]]; then
  # shellcheck source=/dev/null
  source "$BBB_ON_AWS_CONF/runtime.env"
fi
# shellcheck source=../common/lib.sh
source "$BBB_ON_AWS_DIR/common/lib.sh"
