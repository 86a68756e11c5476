#!/usr/bin/env bash
# Idempotent setup: Fashion-MNIST and PostgreSQL (Debian packages), a virtual environment in .venv with the
# pinned dependencies (requirements/constraints.txt) and nas installed editable. A second run
# skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"

DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's dataset-fashion-mnist" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup: $DATA is missing; install Debian's dataset-fashion-mnist (as root) or set dataset.root in the spec" >&2
    fi
fi

# PostgreSQL's server (Debian's package): study storage for a cluster, and the tests' database
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's postgresql" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "setup: PostgreSQL is not installed; its tests are skipped (as root: apt-get install postgresql)" >&2
    fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PY" >&2
    "$PY" -m venv .venv
fi
stamp=.venv/.nas-installed
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing dependencies into .venv (torch pinned to the CPU build 2.13.0)" >&2
    .venv/bin/python -m pip install -q --upgrade pip
    # torch first and alone, so that nothing can resolve it to a CUDA build
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -c requirements/constraints.txt -e '.[test]'
    echo "$want" > "$stamp"
fi
