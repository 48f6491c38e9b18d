#!/bin/bash
# Install a renewed fleet certificate (bbb-on-aws-certificate.service): at every boot before nginx starts (a
# warm-pool server woken after weeks gets the current one before it serves), then every 6 hours by its timer
# with an nginx reload. The issuer renews 30 days before expiry, so a running server has the new certificate
# weeks before it is needed; a reload keeps every meeting running.
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh" with-runtime
# shellcheck source=certificate.sh
source "$BBB_ON_AWS_DIR/bbb/certificate.sh"
LOG_TAG=bbb-certificate

require_params CERTIFICATE_SECRET_ARN FQDN
# shellcheck disable=SC2153 # from params.env / runtime.env (require_params above)
install_fleet_certificate "$CERTIFICATE_SECRET_ARN" "$FQDN" reload >/dev/null
