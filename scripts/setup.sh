#!/usr/bin/env bash
# Create ./.venv (Python >= 3.11) and install mcastlab into it, with the extras named as arguments.
#   scripts/setup.sh            -> core (sim mode, embedded backends)
#   scripts/setup.sh all        -> + live backends, notebooks, dev tools, and the servers the tests start
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mcastlab needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp=".venv/.mcastlab-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec" 2>&1 \
    | grep -v -e "^WARNING: Location" -e "is ignored: it is neither" || true
  .venv/bin/python -c "import mcastlab" || { echo "install of mcastlab failed" >&2; exit 1; }
  touch "$stamp"
fi
if [ "$extras" = "all" ]; then
  bash scripts/install-servers.sh .venv/bin/python
fi
