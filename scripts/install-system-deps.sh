#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real: promtool/Prometheus (also a
# benchmark: a real server scraping the service), Alertmanager (amtool), Pushgateway, wrk and
# valgrind (benchmarks), headless Chromium (status page tests), PostgreSQL (the second store:
# the tests start throwaway clusters of it with initdb/pg_ctl) and HAProxy (`haproxy -c` checks
# the proxy of deploy/compose.yaml's replicas profile; tests and benchmarks run it in front of
# two replicas).
# Does nothing when they are all present.
set -euo pipefail
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus-pushgateway >/dev/null || need+=(prometheus-pushgateway)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v valgrind >/dev/null || need+=(valgrind)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# Debian puts haproxy in /usr/sbin, which a user's PATH may lack.
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
