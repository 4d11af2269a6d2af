#!/usr/bin/env bash
# The test job: set up everything (live extras, notebooks, dev tools, redis-server/nats-server/
# PostgreSQL), lint, then run the whole suite — unit, property, live (the tests start and stop their
# own servers on free loopback ports) and the notebooks under nbval. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
.venv/bin/ruff check mcastlab tests benchmarks
.venv/bin/mypy
export MPLBACKEND=Agg PYTHONHASHSEED=0
.venv/bin/python -m pytest tests notebooks --nbval --nbval-sanitize-with notebooks/sanitize.cfg \
  -q -p no:randomly "$@"
