#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# A real OpenStack Cinder (API, scheduler, volume service with the fake
# driver, SQLite, RabbitMQ) on 127.0.0.1, with no Keystone and no Nova, for
# the collection's integration tests.
#
#   cinder.sh [up]   install what is missing, start what is stopped, wait
#   cinder.sh down   stop the Cinder services and RabbitMQ
#   cinder.sh status say what runs; exit 0 only when everything does
#
# Needs root and a Debian 12 machine; no systemd (daemons are started here).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

BASE=/var/lib/deferred-libvirt-testbed
VENV=/opt/deferred-libvirt-testbed/cinder-venv
CINDER_VERSION=29.0.0
PIP_PACKAGES=("cinder==${CINDER_VERSION}" openstacksdk fixtures)

RMQ_DIR=$BASE/rabbitmq
RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_NODE=deferred-libvirt-testbed@localhost
# Ports above 32768 collide with outgoing connections' ephemeral ports.
RMQ_PORT=5673
RMQ_DIST_PORT=5674
RMQ_EPMD_PORT=5675
RMQ_USER=cinder
RMQ_PASS=cinder-testbed
RMQ_VHOST=cinder

CINDER_DIR=$BASE/cinder
CINDER_CONF=$CINDER_DIR/cinder.conf
CINDER_LOG=$CINDER_DIR/log
RUN_DIR=$BASE/run
API_HOST=127.0.0.1
API_PORT=8776
# noauth Cinder answers 404 unless the project id is hex.
PROJECT_ID=6c1d0e5a3b2f4a7e9d8c1b0a2f3e4d5c
ENDPOINT=http://$API_HOST:$API_PORT/v3/$PROJECT_ID
CLOUDS_YAML=$BASE/clouds.yaml

SERVICES=(cinder-api cinder-scheduler cinder-volume)
WAIT_TIMEOUT=${CINDER_TESTBED_TIMEOUT:-180}

log() { echo "cinder-testbed: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- processes -------------------------------------------------------------

# running PID: alive and not a zombie (PID 1 here may be slow to reap).
running() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# pid_of FILE PATTERN: the pid in FILE if it runs a command matching PATTERN
# (a recycled pid must not be taken for ours).
pid_of() {
    local file=$1 pattern=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    running "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    echo "$pid"
}

# start_bg NAME LOGFILE CMD...: run CMD detached in its own session, pidfile
# in RUN_DIR. setsid keeps the pid (the caller is not a group leader), so the
# pid is also the process group of the service and its workers. fd 9 (the
# up/down lock) is closed, or the daemon would hold the lock for its life.
start_bg() {
    local name=$1 logfile=$2
    shift 2
    setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
    echo $! >"$RUN_DIR/$name.pid"
}

# stop_pid NAME PID: TERM the process group (workers included), then KILL.
stop_pid() {
    local name=$1 pid=$2 pgid i
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
    local target=$pid
    [[ $pgid == "$pid" ]] && target=-$pid
    kill -TERM -- "$target" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        log "$name did not stop in 15 s, killing it"
        kill -KILL -- "$target" 2>/dev/null || true
    fi
    # Workers left behind by a parent that died first.
    [[ $target == -* ]] && kill -KILL -- "$target" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        running "$pid" || return 0
        sleep 0.1
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- installation ----------------------------------------------------------

install_rabbitmq() {
    [[ -x $RMQ_BIN/rabbitmq-server && -x /usr/bin/epmd ]] && return 0
    log "installing rabbitmq-server from Debian"
    export DEBIAN_FRONTEND=noninteractive
    # Waits for another apt run instead of failing on its lock.
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=900)
    if ! apt-cache policy rabbitmq-server 2>/dev/null | awk '/Candidate:/ {print $2}' | grep -qv '(none)'; then
        "${apt[@]}" update >&2
    fi
    # Stale package lists fail the download: refresh them once and retry.
    "${apt[@]}" install --no-install-recommends rabbitmq-server >&2 ||
        { "${apt[@]}" update >&2 && "${apt[@]}" install --no-install-recommends rabbitmq-server >&2; }
}

pick_python() {
    local py
    for py in python3 /usr/bin/python3; do
        command -v "$py" >/dev/null || continue
        if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    die "cinder $CINDER_VERSION needs Python >= 3.11 with venv and ensurepip"
}

install_venv() {
    local marker=$VENV/.testbed-installed
    [[ -f $marker && $(<"$marker") == "${PIP_PACKAGES[*]}" && -x $VENV/bin/cinder-api ]] && return 0
    log "creating $VENV (${PIP_PACKAGES[*]})"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$(pick_python)" -m venv "$VENV"
    local pip_log=/tmp/deferred-libvirt-testbed-pip.log
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" >"$pip_log" 2>&1 ||
        { grep -v "^WARNING: Location" "$pip_log" | tail -n 30 >&2; die "pip install failed (log: $pip_log)"; }
    echo "${PIP_PACKAGES[*]}" >"$marker"
}

# --- RabbitMQ --------------------------------------------------------------

# The node's environment: its own name, ports, data, logs and cookie ($HOME).
RMQ_ENV=(
    HOME="$RMQ_DIR"
    ERL_EPMD_PORT="$RMQ_EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1
    RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
    RABBITMQ_NODENAME="$RMQ_NODE"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RMQ_PORT"
    RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
    RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" RABBITMQ_LOG_BASE="$RMQ_DIR/log"
    RABBITMQ_PID_FILE="$RMQ_DIR/rabbitmq.pid"
    RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
    RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
)

write_rabbitmq_config() {
    mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
    # Keeps the Debian defaults in /etc/rabbitmq out of this node.
    : >"$RMQ_DIR/rabbitmq-env.conf"
    echo '[].' >"$RMQ_DIR/enabled_plugins"
    # The default user and vhost are created when the node's database is new.
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$RMQ_PORT
default_vhost = $RMQ_VHOST
default_user = $RMQ_USER
default_pass = $RMQ_PASS
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
default_user_tags.administrator = true
EOF
}

rabbitmq_login_ok() {
    "$VENV/bin/python" - "amqp://$RMQ_USER:$RMQ_PASS@127.0.0.1:$RMQ_PORT/$RMQ_VHOST" <<'EOF' 2>/dev/null
import sys
import kombu
conn = kombu.Connection(sys.argv[1], connect_timeout=5)
conn.connect()
conn.release()
EOF
}

start_rabbitmq() {
    if pid_of "$RUN_DIR/rabbitmq.pid" beam >/dev/null && port_open $RMQ_PORT; then
        return 0
    fi
    stop_rabbitmq
    port_open $RMQ_PORT && die "port $RMQ_PORT is taken by another program"
    write_rabbitmq_config
    if ! pid_of "$RUN_DIR/epmd.pid" epmd >/dev/null; then
        port_open $RMQ_EPMD_PORT && die "port $RMQ_EPMD_PORT is taken by another program"
        start_bg epmd "$RMQ_DIR/log/epmd.log" epmd -port $RMQ_EPMD_PORT -address 127.0.0.1
    fi
    local _attempt
    for _attempt in 1 2; do
        log "starting RabbitMQ on 127.0.0.1:$RMQ_PORT"
        rm -f "$RMQ_DIR/rabbitmq.pid"
        (cd "$RMQ_DIR" && start_bg rabbitmq-server "$RMQ_DIR/log/startup.log" \
            env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server")
        local launcher i
        launcher=$(<"$RUN_DIR/rabbitmq-server.pid")
        for ((i = 0; i < 600; i++)); do
            port_open $RMQ_PORT && [[ -s $RMQ_DIR/rabbitmq.pid ]] && break
            running "$launcher" || {
                tail -n 30 "$RMQ_DIR/log/startup.log" >&2
                die "RabbitMQ exited during start; logs in $RMQ_DIR/log"
            }
            sleep 0.1
        done
        port_open $RMQ_PORT || die "RabbitMQ did not listen on $RMQ_PORT within 60 s; logs in $RMQ_DIR/log"
        # RabbitMQ removes its own pidfile on stop; keep the pid of the VM.
        cp "$RMQ_DIR/rabbitmq.pid" "$RUN_DIR/rabbitmq.pid"
        rabbitmq_login_ok && return 0
        # A database from another configuration lacks the user: start afresh.
        log "RabbitMQ refused the $RMQ_USER login; recreating its database"
        stop_rabbitmq_node
        rm -rf "$RMQ_DIR/mnesia"
        mkdir -p "$RMQ_DIR/mnesia"
    done
    die "RabbitMQ refused the $RMQ_USER login; logs in $RMQ_DIR/log"
}

stop_rabbitmq_node() {
    local pid
    if pid=$(pid_of "$RUN_DIR/rabbitmq.pid" beam); then
        log "stopping RabbitMQ"
        stop_pid rabbitmq "$pid"
    fi
    if pid=$(pid_of "$RUN_DIR/rabbitmq-server.pid" rabbitmq-server); then
        stop_pid rabbitmq-server "$pid"
    fi
    rm -f "$RUN_DIR/rabbitmq.pid" "$RUN_DIR/rabbitmq-server.pid"
}

stop_rabbitmq() {
    stop_rabbitmq_node
    local pid
    if pid=$(pid_of "$RUN_DIR/epmd.pid" epmd); then
        stop_pid epmd "$pid"
    fi
    rm -f "$RUN_DIR/epmd.pid"
}

# --- Cinder ----------------------------------------------------------------

# write_if_changed FILE: stdin to FILE, leaving FILE alone when equal.
write_if_changed() {
    local file=$1 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod 644 "$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$file"
    fi
}

write_cinder_config() {
    mkdir -p "$CINDER_DIR" "$CINDER_LOG" "$CINDER_DIR/lock" "$RUN_DIR"
    local filters
    filters=$VENV/etc/cinder/resource_filters.json
    [[ -f $filters ]] || die "$filters is missing from the venv"
    write_if_changed "$CINDER_CONF" <<EOF
[DEFAULT]
auth_strategy = noauth
api_paste_config = $CINDER_DIR/api-paste.ini
resource_query_filters_file = $filters
osapi_volume_listen = $API_HOST
osapi_volume_listen_port = $API_PORT
osapi_volume_workers = 1
transport_url = rabbit://$RMQ_USER:$RMQ_PASS@127.0.0.1:$RMQ_PORT/$RMQ_VHOST
state_path = $CINDER_DIR
log_dir = $CINDER_LOG
debug = false
# A fixed host keeps volumes reachable when the machine's hostname changes.
host = deferred-libvirt-testbed
my_ip = 127.0.0.1
enabled_backends = fake
report_interval = 3
# Tests create many volumes; quotas only add database writes here.
use_default_quota_class = false
quota_volumes = -1
quota_snapshots = -1
quota_gigabytes = -1
quota_backups = -1
quota_backup_gigabytes = -1
quota_groups = -1
per_volume_size_limit = -1
# The tests stop services mid-operation: do not wait a minute for that.
graceful_shutdown_timeout = 5
scheduler_driver_init_wait_time = 10

[database]
connection = sqlite:///$CINDER_DIR/cinder.sqlite
# A test database: no fsync, shorter write locks.
sqlite_synchronous = false

[oslo_concurrency]
lock_path = $CINDER_DIR/lock

[coordination]
# One lock file per volume operation: keep them out of the state dir.
backend_url = file://$CINDER_DIR/lock

[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
EOF
    write_if_changed "$CINDER_DIR/api-paste.ini" <<'EOF'
# Cinder's own pipeline with the test bed's filter in front of noauth.
[composite:osapi_volume]
use = call:cinder.api:root_app_factory
/: apiversions
/healthcheck: healthcheck
/v3: openstack_volume_api_v3

[composite:openstack_volume_api_v3]
use = call:cinder.api.middleware.auth:pipeline_factory
noauth = request_id cors http_proxy_to_wsgi faultwrap sizelimit osprofiler testbed noauth apiv3

[filter:testbed]
paste.filter_factory = cinder_paste_filter:filter_factory

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = cinder

[filter:faultwrap]
paste.filter_factory = cinder.api.middleware.fault:FaultWrapper.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[filter:noauth]
paste.filter_factory = cinder.api.middleware.auth:NoAuthMiddleware.factory

[filter:sizelimit]
paste.filter_factory = oslo_middleware.sizelimit:RequestBodySizeLimiter.factory

[app:apiv3]
paste.app_factory = cinder.api.v3.router:APIRouter.factory

[pipeline:apiversions]
pipeline = request_id cors http_proxy_to_wsgi faultwrap testbed osvolumeversionapp

[app:osvolumeversionapp]
paste.app_factory = cinder.api.versions:Versions.factory

[pipeline:healthcheck]
pipeline = request_id healthcheckapp

[app:healthcheckapp]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
backends = disable_by_file
disable_by_file_path = /var/lib/deferred-libvirt-testbed/cinder/healthcheck_disable

[filter:request_id]
paste.filter_factory = cinder.api.middleware.request_id:RequestId.factory
EOF
    # Makes the paste filter importable by the venv, wherever this checkout is.
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    write_if_changed "$site/deferred_libvirt_testbed.pth" <<<"$HERE"
    write_if_changed "$CINDER_DIR/launch.py" <<'EOF'
"""Runs a Cinder service (argv[1]) with SQLite safe for several processes.

oslo.db starts SQLite transactions with a deferred BEGIN: two processes that
read and then write deadlock and one fails at once with "database is
locked". BEGIN IMMEDIATE takes the write lock up front; it is retried here
with eventlet's sleep, since SQLite's own busy wait would block every green
thread of the process, the lock holder's included.
"""
import importlib
import sqlite3
import sys

from cinder import monkey_patch
monkey_patch.patch()

import time  # noqa: E402  (green after monkey patching)

from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

BUSY_MS = 5000
LOCK_WAIT = 60


# Class-level listeners run before oslo.db's per-engine ones.
@event.listens_for(Engine, 'connect')
def _sqlite_busy_timeout(dbapi_con, _record):
    if isinstance(dbapi_con, sqlite3.Connection):
        dbapi_con.execute('PRAGMA busy_timeout = %d' % BUSY_MS)


@event.listens_for(Engine, 'begin')
def _sqlite_begin_immediate(conn):
    if conn.dialect.name != 'sqlite' or 'in_transaction' in conn.info:
        return
    dbapi_con = conn.connection.dbapi_connection
    dbapi_con.execute('PRAGMA busy_timeout = 0')
    deadline = time.monotonic() + LOCK_WAIT
    delay = 0.001
    try:
        while True:
            try:
                dbapi_con.execute('BEGIN IMMEDIATE')
                break
            except sqlite3.OperationalError as exc:
                if ('locked' not in str(exc)
                        or time.monotonic() > deadline):
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
    finally:
        dbapi_con.execute('PRAGMA busy_timeout = %d' % BUSY_MS)
    conn.info['in_transaction'] = True


if __name__ == '__main__':
    service = sys.argv[1]
    sys.argv = [service] + sys.argv[2:]
    module = importlib.import_module('cinder.cmd.' + service.split('-', 1)[1])
    sys.exit(module.main())
EOF
}

sync_db() {
    local marker=$CINDER_DIR/.db-synced db=$CINDER_DIR/cinder.sqlite svc
    if ! [[ -f $marker && -s $db ]]; then
        log "creating the Cinder database"
        "$VENV/bin/cinder-manage" --config-file "$CINDER_CONF" db sync >>"$CINDER_LOG/cinder-manage.out" 2>&1 ||
            { tail -n 30 "$CINDER_LOG/cinder-manage.out" >&2; die "cinder-manage db sync failed"; }
        touch "$marker"
    fi
    for svc in "${SERVICES[@]}"; do
        pid_of "$RUN_DIR/$svc.pid" "$svc" >/dev/null && return 0
    done
    # Nothing runs: drop lock files of past operations.
    find "$CINDER_DIR/lock" -mindepth 1 -delete
    find "$CINDER_DIR" -maxdepth 1 -type f -name 'cinder-*' -delete
    # Readers then run beside the one writer; the mode is kept in the file.
    "$VENV/bin/python" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1], timeout=10).execute("PRAGMA journal_mode=WAL")' "$db"
}

# Prints 1 when a service was started.
start_cinder_services() {
    local svc started=0
    # The volume service first, so the scheduler hears of it early.
    for svc in cinder-volume cinder-scheduler cinder-api; do
        pid_of "$RUN_DIR/$svc.pid" "$svc" >/dev/null && continue
        if [[ $svc == cinder-api ]] && port_open $API_PORT; then
            die "port $API_PORT is taken by another program"
        fi
        log "starting $svc"
        start_bg "$svc" "$CINDER_LOG/$svc.out" \
            "$VENV/bin/python" "$CINDER_DIR/launch.py" "$svc" --config-file "$CINDER_CONF" \
            --log-file "$CINDER_LOG/$svc.log"
        started=1
    done
    echo $started
}

stop_cinder_services() {
    local svc pid
    for svc in cinder-api cinder-scheduler cinder-volume; do
        if pid=$(pid_of "$RUN_DIR/$svc.pid" "$svc"); then
            log "stopping $svc"
            stop_pid "$svc" "$pid"
        fi
        rm -f "$RUN_DIR/$svc.pid"
    done
}

# wait_ready SINCE: the API answers, the scheduler and a volume service are
# up (with a heartbeat newer than SINCE, an epoch) and the scheduler knows
# the fake pool, so a volume create right after this succeeds.
wait_ready() {
    "$VENV/bin/python" - "$1" "$WAIT_TIMEOUT" "$API_HOST" "$API_PORT" "$PROJECT_ID" "$RUN_DIR" <<'EOF'
import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request

since, timeout, host, port, project, run_dir = sys.argv[1:]
since, timeout = float(since), float(timeout)
base = 'http://%s:%s' % (host, port)
headers = {'X-Auth-Token': 'admin:' + project, 'Accept': 'application/json'}
deadline = time.time() + timeout
last = 'nothing tried yet'


def get(path):
    req = urllib.request.Request(base + path, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b'null')


def alive(name):
    try:
        with open(os.path.join(run_dir, name + '.pid')) as f:
            pid = int(f.read())
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] not in ('Z', 'X')
    except (OSError, ValueError, IndexError):
        return False


def fresh(svc):
    if svc.get('state') != 'up':
        return False
    stamp = svc.get('updated_at')
    if not stamp:
        return False
    at = datetime.datetime.fromisoformat(stamp).replace(
        tzinfo=datetime.timezone.utc).timestamp()
    return at >= since


while time.time() < deadline:
    dead = [s for s in ('cinder-api', 'cinder-scheduler', 'cinder-volume')
            if not alive(s)]
    if dead:
        print('%s exited' % ', '.join(dead), file=sys.stderr)
        sys.exit(2)
    try:
        services = get('/v3/%s/os-services' % project)['services']
        ready = {s['binary'] for s in services if fresh(s)}
        missing = {'cinder-scheduler', 'cinder-volume'} - ready
        if missing:
            last = 'not up yet: ' + ', '.join(sorted(missing))
        else:
            pools = get('/v3/%s/scheduler-stats/get_pools' % project)['pools']
            if pools:
                sys.exit(0)
            last = 'the scheduler knows no pool yet'
    except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
        last = 'API: %s' % exc
    time.sleep(0.25)
print('timed out after %ds: %s' % (timeout, last), file=sys.stderr)
sys.exit(1)
EOF
}

write_clouds_yaml() {
    write_if_changed "$CLOUDS_YAML" <<EOF
# openstacksdk configuration for the test bed's noauth Cinder.
clouds:
  testbed:
    auth_type: admin_token
    auth:
      endpoint: $ENDPOINT
      token: admin:$PROJECT_ID
    block_storage_endpoint_override: $ENDPOINT
    block_storage_api_version: '3'
EOF
}

# --- subcommands -----------------------------------------------------------

cmd_up() {
    [[ $(id -u) == 0 ]] || die "must run as root"
    local t0=$SECONDS
    install_rabbitmq
    install_venv
    mkdir -p "$RUN_DIR"
    start_rabbitmq
    write_cinder_config
    sync_db
    local since started
    since=$(date +%s)
    started=$(start_cinder_services)
    [[ $started == 1 ]] || since=0
    if ! wait_ready "$since"; then
        local svc
        for svc in "${SERVICES[@]}"; do
            echo "--- $CINDER_LOG/$svc.log" >&2
            tail -n 15 "$CINDER_LOG/$svc.log" 2>/dev/null >&2 || true
            tail -n 5 "$CINDER_LOG/$svc.out" 2>/dev/null >&2 || true
        done
        die "Cinder is not ready; logs in $CINDER_LOG"
    fi
    write_clouds_yaml
    log "Cinder is up at $ENDPOINT ($((SECONDS - t0)) s)"
    echo "export OS_CLIENT_CONFIG_FILE=$CLOUDS_YAML OS_CLOUD=testbed"
}

cmd_down() {
    stop_cinder_services
    stop_rabbitmq
    log "stopped"
}

cmd_status() {
    local ok=0 name pattern pid
    for name in epmd rabbitmq cinder-volume cinder-scheduler cinder-api; do
        case $name in
            rabbitmq) pattern=beam ;;
            *) pattern=$name ;;
        esac
        if pid=$(pid_of "$RUN_DIR/$name.pid" "$pattern"); then
            echo "$name: running (pid $pid)"
        else
            echo "$name: stopped"
            ok=1
        fi
    done
    if curl -fsS -o /dev/null -m 5 -H "X-Auth-Token: admin:$PROJECT_ID" "$ENDPOINT/os-services" 2>/dev/null; then
        echo "api: answering at $ENDPOINT"
    else
        echo "api: not answering"
        ok=1
    fi
    return $ok
}

main() {
    local cmd=${1:-up}
    mkdir -p "$BASE"
    case $cmd in
        up | down)
            # One up or down at a time, e.g. from parallel test workers.
            exec 9>"$BASE/.cinder.lock"
            flock -w 600 9 || die "another up or down holds $BASE/.cinder.lock"
            "cmd_$cmd"
            ;;
        status) cmd_status ;;
        *) die "usage: $0 [up|down|status]" ;;
    esac
}

main "$@"
