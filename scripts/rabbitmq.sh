#!/usr/bin/env bash
# RabbitMQ for the suite's real-broker tests (Debian's rabbitmq-server), installed where missing.
# The tests start it as an ordinary process on free ports with a data folder of their own
# (capacity/matrix/embedded.py: LocalRabbitMQ); nothing here starts a service. Where it cannot be
# installed (no root, no apt), fail: the RabbitMQ tests are real-component tests, never skipped.
set -uo pipefail
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends rabbitmq-server >/tmp/capacity-apt-rabbitmq.log 2>&1; then
    apt-get update -q >>/tmp/capacity-apt-rabbitmq.log 2>&1
    if ! apt-get install -y -q --no-install-recommends rabbitmq-server >>/tmp/capacity-apt-rabbitmq.log 2>&1; then
      cat /tmp/capacity-apt-rabbitmq.log >&2
      echo "scripts/rabbitmq.sh: could not install rabbitmq-server (log above)" >&2
      exit 1
    fi
  fi
  exit 0
fi
echo "scripts/rabbitmq.sh: rabbitmq-server is missing and cannot be installed here (needs root and apt-get):" \
  "install it (apt-get install rabbitmq-server, brew install rabbitmq) and run the tests again" >&2
exit 1
