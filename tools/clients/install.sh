#!/usr/bin/env bash
# Installs the third-party AMQP clients that the interop tests drive (tests/python_clients.rs,
# tests/node_clients.rs, tests/amqp_tools.rs):
#   - /work/main/.venv (python3 -m venv) with tools/clients/requirements.txt (pika, kombu);
#   - tools/clients/node/node_modules from package-lock.json (amqplib);
#   - Debian's amqp-tools (amqp-publish, amqp-consume, amqp-declare-queue), if missing;
#   - Debian's rabbitmq-server for /usr/bin/rabbitmqadmin (v1), if missing
#     (tests/management_api.rs). Only the script is used: the tests never talk to a RabbitMQ
#     node, whether or not the package manages to start one.
# Idempotent: each step is skipped when what it installs is already up to date. Prints
# nothing on success; on failure prints the failing step's output and exits non-zero.
set -euo pipefail

clients="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$clients/../.." && pwd)"
venv="$root/.venv"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Runs a step with its output captured; shows the output only if the step fails.
step() {
  local what="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    echo "tools/clients/install.sh: $what failed:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# Python: a venv whose stamp records the requirements it was built from.
requirements="$clients/requirements.txt"
stamp="$venv/.warren-requirements"
if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv" python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$stamp"; then
  step "pip install" "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
  cp "$requirements" "$stamp"
fi

# Node: node_modules matching package-lock.json (npm writes its own copy of the lock to
# node_modules/.package-lock.json; reinstall when the two differ).
node_dir="$clients/node"
if ! command -v npm >/dev/null 2>&1; then
  echo "tools/clients/install.sh: npm is not installed" >&2
  exit 1
fi
if [ ! -d "$node_dir/node_modules/amqplib" ] \
  || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  step "npm ci" npm --prefix "$node_dir" ci --no-audit --no-fund --loglevel=error
fi

# amqp-tools from Debian.
if ! command -v amqp-publish >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
  # A fresh machine may have no package lists yet.
  if ! apt-cache show amqp-tools >/dev/null 2>&1; then
    step "apt-get update" $sudo apt-get update -q
  fi
  step "apt-get install amqp-tools" env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q amqp-tools
fi

# rabbitmqadmin v1 from Debian's rabbitmq-server.
if [ ! -x /usr/bin/rabbitmqadmin ]; then
  sudo=""
  if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
  if ! apt-cache show rabbitmq-server >/dev/null 2>&1; then
    step "apt-get update" $sudo apt-get update -q
  fi
  step "apt-get install rabbitmq-server" env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q rabbitmq-server
fi
