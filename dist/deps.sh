#!/usr/bin/env bash
# Installs the Debian packages of dist/deps/debian.txt that are missing, and
# only those: with nothing missing it does nothing, without the network.
#
#   dist/deps.sh [-n] [LIST]
#
# -n prints the missing packages, one a line, and installs nothing. LIST is
# another package list (tests). Installing needs root and apt-get; without
# them it names the missing packages and exits 0, so that "make test" still
# runs the unit tests (the end-to-end tests skip without root).
set -euo pipefail
dry=
if [ "${1-}" = -n ]; then
  dry=1
  shift
fi
list=${1:-$(dirname "$0")/deps/debian.txt}
mapfile -t pkgs < <(sed 's/#.*//' "$list" | tr -s ' \t' '\n' | grep -v '^$')

if ! command -v dpkg-query >/dev/null; then
  echo "dist/deps.sh: not Debian (no dpkg-query): the end-to-end tests need the equivalents of: ${pkgs[*]}" >&2
  exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != "ii " ]; then
    missing+=("$p")
  fi
done
if [ -n "$dry" ]; then
  [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"
  exit 0
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "dist/deps.sh: missing Debian packages: ${missing[*]}" >&2
  echo "dist/deps.sh: the end-to-end tests need them, and root; as root, make test (or dist/deps.sh) installs them" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "dist/deps.sh: no apt-get to install the missing packages: ${missing[*]}" >&2
  exit 0
fi
echo "dist/deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages must not start their daemons (haproxy, nginx, bird, frr): the tests and the
# bench start their own, in the test network. Docker images deny it already;
# else deny it for the time of the install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
