#!/bin/bash
# Install a renewed fleet certificate and reload nginx (bbb-on-aws-certificate.timer, every 6 hours). The
# issuer renews 30 days before expiry, so a host picks the new certificate up weeks before it is needed;
# a reload keeps every meeting running.
# shellcheck source-path=SCRIPTDIR disable=SC2153 # UPPER_CASE values come from params.env/runtime.env
set -euo pipefail
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/params.env"
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/runtime.env"
# shellcheck source=../common/lib.sh
source "$BBB_ON_AWS_DIR/common/lib.sh"
# shellcheck source=certificate.sh
source "$BBB_ON_AWS_DIR/bbb/certificate.sh"
LOG_TAG=bbb-certificate

require_params CERTIFICATE_SECRET_ARN FQDN
install_fleet_certificate "$CERTIFICATE_SECRET_ARN" "$FQDN" reload >/dev/null
