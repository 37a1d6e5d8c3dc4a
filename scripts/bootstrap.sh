#!/usr/bin/env bash
# Set up everything the two README commands need on a fresh Debian machine:
# a virtualenv with the project installed, and a MySQL/MariaDB server binary.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*" >&2; }

find_python() {
  for c in python3.11 python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

find_server() {
  for b in mariadbd mysqld; do
    command -v "$b" >/dev/null 2>&1 && return 0
    for d in /usr/sbin /usr/local/sbin /usr/local/mysql/bin /usr/libexec; do
      [ -x "$d/$b" ] && return 0
    done
  done
  return 1
}

if ! find_server; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "no MySQL/MariaDB server binary found; installing Debian's mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q mariadb-server >&2
  else
    say "error: no MySQL/MariaDB server binary (mariadbd or mysqld) on PATH."
    say "install it first, e.g. 'sudo apt-get install mariadb-server', then run this again."
    exit 1
  fi
fi

PY=$(find_python) || { say "error: Python 3.11 or newer is needed (apt-get install python3 python3-venv)"; exit 1; }

if [ ! -x .venv/bin/python ]; then
  say "creating virtualenv .venv with $PY"
  "$PY" -m venv .venv || { say "error: could not create a virtualenv (apt-get install python3-venv)"; exit 1; }
fi

# Reinstall only when the dependency declarations changed since the last install.
stamp=.venv/.installed
want=$( { cat pyproject.toml; [ -f constraints.txt ] && cat constraints.txt; true; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing the project and its dependencies into .venv (takes a minute the first time)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  cons=()
  [ -f constraints.txt ] && cons=(-c constraints.txt)
  log=$(mktemp)
  if ! .venv/bin/python -m pip install -q "${cons[@]}" -e ".[dev]" >"$log" 2>&1; then
    grep -v -e 'is ignored: it is neither a file nor a directory' "$log" >&2 || true
    rm -f "$log"; say "error: pip install failed (see above)"; exit 1
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi
