#!/usr/bin/env bash
# `make setup`: the system packages (PostgreSQL + PostGIS for the embedded STAC API,
# Graphviz for Dask graphs) and .venv with the pinned pip path (requirements.txt).
# Idempotent: a second run checks, finds nothing to do and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
APT_PACKAGES="postgresql postgresql-postgis graphviz"
did=0

missing_system() {
    local missing=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=("PostgreSQL")
    ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 \
        || { command -v pg_config >/dev/null 2>&1 && [ -f "$(pg_config --sharedir)/extension/postgis.control" ]; } \
        || missing+=("PostGIS")
    command -v dot >/dev/null 2>&1 || missing+=("Graphviz")
    echo "${missing[@]:-}"
}

missing=$(missing_system)
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing system packages ($missing): apt-get install $APT_PACKAGES"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
        did=1
        missing=$(missing_system)
        [ -z "$missing" ] || { echo "setup: still missing after apt-get: $missing" >&2; exit 1; }
    else
        cat >&2 <<MSG
setup: missing system packages: $missing
Install them, then run the command again:
  Debian/Ubuntu:  sudo apt-get install $APT_PACKAGES
  Fedora:         sudo dnf install postgresql-server postgis graphviz
  macOS:          brew install postgresql postgis graphviz
  conda:          conda env create -f environment.yml   (brings all of them)
MSG
        exit 1
    fi
fi

VENV=${VENV:-.venv}
if [ "$VENV" != ".venv" ]; then  # an environment of the user's own, e.g. conda's
    if "$VENV/bin/python" -c "import helpers, pystac_client, odc.stac, rioxarray, stac_fastapi.pgstac" 2>/dev/null; then
        [ "$did" = 1 ] || echo "setup: using the environment $VENV as it is (nothing installed)"
        exit 0
    fi
    echo "setup: $VENV lacks the project's packages: activate it and run \`pip install --no-deps -e .\` after \`conda env create -f environment.yml\`" >&2
    exit 1
fi
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
    did=1
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: installing the pinned packages of requirements.txt into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt
    .venv/bin/python -m pip install --quiet --no-deps -e .
    echo "$wanted" > "$stamp"
    did=1
fi
if [ "$did" = 0 ]; then
    echo "setup: up to date, nothing to do (system packages present, .venv matches requirements.txt)"
else
    echo "setup: done"
fi
