#!/usr/bin/env bash
# Installs the system packages the test suite uses (Debian): Chromium for the web UI tests,
# promtool (package prometheus) for the alert rules, systemd-analyze for the unit files,
# iproute2 for network-namespace fault tests, gnupg to sign the apt repository the policy
# resource tests build (they also use dpkg-deb, useradd, unshare and taskset, which Debian always has);
# for the packaging (npm run package) and its tests: dpkg-dev (dpkg-shlibdeps, and strip from
# binutils), lintian, man-db (systemd-analyze checks the units' man pages with it), and adduser
# and curl, which the packages' life cycle test runs in its sandbox. AXLE_BENCH_PUPPET=1 (or
# --with-puppet) also installs puppet-agent, which only `npm run bench` uses, to compare
# `puppet apply` with `axle-envoy apply`. Skips what is already there.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
{ command -v gpg && command -v gpg-agent && command -v gpgconf; } >/dev/null 2>&1 || need+=(gnupg)
if [ "${AXLE_BENCH_PUPPET:-}" = 1 ] || [ "${1:-}" = --with-puppet ]; then
  command -v puppet >/dev/null 2>&1 || [ -x /usr/bin/puppet ] || need+=(puppet-agent)
fi
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v strip >/dev/null 2>&1 || need+=(binutils)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v adduser >/dev/null 2>&1 || need+=(adduser)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: missing ${need[*]}; run this script as root (it uses apt-get)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "install-test-deps: chromium, promtool, systemd-analyze, ip, gpg, dpkg-shlibdeps, strip, lintian, man, adduser and curl are present"
