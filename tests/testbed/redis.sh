#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The fleet workflow's Redis fact cache (issue 26): Debian's redis-server, run by the test bed on 127.0.0.1:6390
# with a password (never the package's own service, which policy-rc.d keeps stopped here), and
# community.general's redis cache plugin, unpacked from the ansible package on PyPI into the test bed's own
# collections path (Galaxy is out of reach here; the plugin is one file of that collection and needs the redis Python
# library, which requirements-test.txt and requirements-newest.txt install).
#   redis.sh up|down|status
# up writes $BASE/redis/connection: the cache plugin's connection string, host:port:db:password (0600).
# The tests put $BASE/collections on ANSIBLE_COLLECTIONS_PATH. Idempotent.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${DEFERRED_TESTBED_DIR:-/var/lib/deferred-libvirt-testbed}
DIR=$BASE/redis
PORT=${DEFERRED_TESTBED_REDIS_PORT:-6390}
COLLECTIONS=$BASE/collections
# community.general 11 (in ansible 12) supports ansible-core 2.16 and later: both lines the collection supports.
ANSIBLE_PACKAGE='ansible>=12,<13'
PYTHON=${PYTHON:-$root/.venv/bin/python}

log() { echo "redis: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=tests/testbed/debs.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debs.sh"

ping() { [[ -s $DIR/password ]] && REDISCLI_AUTH=$(<"$DIR/password") redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

install_plugin() {
  local have
  have=$COLLECTIONS/ansible_collections/community/general/plugins/cache/redis.py
  [[ -f $have ]] && return 0
  [[ -x $PYTHON ]] || die "$PYTHON not found: run scripts/venv.sh first"
  local work
  work=$(mktemp -d)
  log "unpacking community.general from PyPI's $ANSIBLE_PACKAGE (its collections only, never installed)"
  "$PYTHON" -m pip download --quiet --no-deps --dest "$work" "$ANSIBLE_PACKAGE"
  mkdir -p "$COLLECTIONS"
  "$PYTHON" - "$work"/ansible-*.whl "$COLLECTIONS" <<'EOF'
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if m.startswith('ansible_collections/community/general/')]
    archive.extractall(dest + '.part', members)
EOF
  rm -rf "$COLLECTIONS/ansible_collections/community/general"
  mkdir -p "$COLLECTIONS/ansible_collections/community"
  mv "$COLLECTIONS.part/ansible_collections/community/general" "$COLLECTIONS/ansible_collections/community/general"
  rm -rf "$COLLECTIONS.part" "$work"
  [[ -f $have ]] || die "community.general has no plugins/cache/redis.py"
}

up() {
  install_debs redis-server
  install_plugin
  mkdir -p "$DIR"
  chmod 0700 "$DIR"
  if [[ ! -s $DIR/password ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$DIR/password")
  fi
  if ! ping; then
    [[ -f $DIR/redis.pid ]] && kill "$(<"$DIR/redis.pid")" 2>/dev/null || true
    # No persistence: the cache lives as long as the server, as the tests need.
    (umask 077; cat > "$DIR/redis.conf" <<EOF
bind 127.0.0.1
port $PORT
protected-mode yes
requirepass $(<"$DIR/password")
daemonize yes
pidfile $DIR/redis.pid
logfile $DIR/redis.log
dir $DIR
save ""
appendonly no
EOF
    )
    redis-server "$DIR/redis.conf"
    local i
    for ((i = 0; i < 50; i++)); do ping && break; sleep 0.1; done
    ping || die "redis-server did not answer on 127.0.0.1:$PORT (see $DIR/redis.log)"
  fi
  (umask 077; echo "127.0.0.1:$PORT:0:$(<"$DIR/password")" > "$DIR/connection")
  log "up: 127.0.0.1:$PORT ($(redis-server --version | awk '{print $3}')), connection in $DIR/connection, community.general in $COLLECTIONS"
}

down() {
  if [[ -f $DIR/redis.pid ]] && kill "$(<"$DIR/redis.pid")" 2>/dev/null; then log "stopped"; fi
  rm -f "$DIR/redis.pid"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  status)
    if ping; then log "running on 127.0.0.1:$PORT"; else log "not running"; exit 1; fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
