#!/usr/bin/env bash
# Install everything drkit and its sandbox need on a fresh Debian machine with Python 3.11.
# Run as root from the repository: Debian packages, the Azurite emulator (npm), and a
# virtual environment in .venv holding drkit, its tools and its Jupyter kernel.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")"

# chromium: the audit report's test renders it in a real (headless) browser. age: the
# break-glass restore of an encrypted backup by hand (age -d | gunzip | mysql), and its test.
packages=(mariadb-server mariadb-client zstd cron chromium age)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "install.sh: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Azurite (Microsoft's Blob Storage emulator) stays inside the checkout.
if [ ! -x .tools/node/node_modules/.bin/azurite-blob ]; then
  echo "install.sh: installing azurite (npm)"
  npm install --prefix .tools/node --no-save --no-audit --no-fund --loglevel=error azurite@3.35.0
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
echo "install.sh: installing drkit into .venv"
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[sandbox,lab,fleet,dev]'
# JupyterLab's jupyter-events asks for jsonschema's format checkers, among them rfc3987-syntax,
# which builds a parser on import: 1.3 s of CPU in every process that loads nbformat, so in
# every runbook run's papermill. Nothing here checks IRIs; jsonschema skips that format
# without it.
.venv/bin/pip uninstall --quiet --yes rfc3987-syntax
ln -sf ../../.tools/node/node_modules/.bin/azurite-blob .venv/bin/azurite-blob
# The Jupyter kernel the runbooks run on: this environment's Python, under a fixed name.
.venv/bin/python -m ipykernel install --sys-prefix --name drkit --display-name drkit >/dev/null
echo "install.sh: done. drkit is .venv/bin/drkit"
