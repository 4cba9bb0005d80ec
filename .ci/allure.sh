#!/usr/bin/env bash
# Allure report prerequisites on a fresh Debian 12 machine (run as root; idempotent, quick
# when present): a Java runtime, the Allure command line from npm (allure-commandline,
# pinned), Debian's chromium, and playwright-core from npm (pinned; it drives that chromium,
# it downloads no browser) for the headless-browser test of the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."

ALLURE_VERSION=2.46.1
PLAYWRIGHT_VERSION=1.65.1

need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

have=$(allure --version 2>/dev/null || true)
if [ "$have" != "$ALLURE_VERSION" ]; then
    echo "allure.sh: installing allure-commandline@$ALLURE_VERSION (found: ${have:-none})"
    npm install -g --no-audit --no-fund "allure-commandline@$ALLURE_VERSION" >/dev/null
fi

pw=$(NODE_PATH="$(npm root -g)" node -p 'require("playwright-core/package.json").version' 2>/dev/null || true)
if [ "$pw" != "$PLAYWRIGHT_VERSION" ]; then
    echo "allure.sh: installing playwright-core@$PLAYWRIGHT_VERSION (found: ${pw:-none})"
    npm install -g --no-audit --no-fund "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi

python3 -c 'import allure_pytest' 2>/dev/null || python3 -m pip install -q 'allure-pytest>=2.13'
echo "allure.sh: allure $(allure --version), playwright-core $PLAYWRIGHT_VERSION, $(java -version 2>&1 | head -1), $(chromium --version 2>/dev/null)"
