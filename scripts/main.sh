#!/usr/bin/env bash
# The main job: set up (core only) and run the IoT scenario in sim mode on the embedded default.
# Extra arguments go to `mcastlab run` (e.g. --set workload.devices=1000 --out data/runs/mine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mcastlab run scenarios/iot-device-management.yaml "$@"
