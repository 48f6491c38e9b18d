#!/usr/bin/env bash
# Installs everything on a fresh Debian machine (Python 3.11+, npm), idempotently:
#   the Python virtualenv (.venv) from the pinned requirements with the operator command `bbb-on-aws`
#   installed in it, the pinned CDK CLI and Node 22 LTS (npm ci:
#   package.json, used through scripts/env.sh), and with
#   the Debian packages the relay wheel's build needs on every machine that synthesizes (the wheel is the
#   TURN hosts' artifact: clang + libbpf-dev + linux-libc-dev compile its TC program, gcc + python3-dev its C
#   packet path; without them the wheel would still build, and the hosts would run neither), and with
#   --test-tools the Debian packages the test suite runs for real (coturn, chromium, firefox-esr, shellcheck, and ruby +
#   busybox for the frontend containers' start scripts, postgresql for the database-users custom resource's SQL,
#   libbpf1 to load the TC program, ethtool for the kernel-path namespace tests, pebble (Let's Encrypt's test
#   CA) for the fleet certificate issuer).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(clang libbpf-dev linux-libc-dev gcc python3-dev)
if [[ "${1:-}" == "--test-tools" ]]; then
  packages+=(coturn chromium firefox-esr shellcheck iproute2 openssl ruby busybox postgresql libbpf1 ethtool pebble)
fi
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
# The operator command `bbb-on-aws` (console script; its dependencies are pinned in the requirements above).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
.venv/bin/python -m pip check >/dev/null
npm ci --no-audit --no-fund --loglevel=error
# The certificate issuer's Lambda layer (cp313 manylinux wheels): downloaded now, so synths work offline. It
# imports the CDK, so it runs on the pinned Node 22 that npm ci just installed (scripts/env.sh), not the EOL one.
source scripts/env.sh
.venv/bin/python -c "from cdk_constructs.certificates.layer import build_layer; print('certificate issuer layer ready in', build_layer()[0])"
