#!/usr/bin/env bash
# Installs the servers the end-to-end tests start on 127.0.0.1: moto's S3 server
# (tests/servers/s3.py) and Azurite (tests/servers/azurite.py), with the Azure
# client the tests use to create containers. Quick when they are there already.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install --quiet --disable-pip-version-check "moto[server]==5.2.1" "azure-storage-blob==12.31.1"
if [ ! -x node_modules/.bin/azurite-blob ]; then
  npm install --silent --no-audit --no-fund --no-save --no-package-lock azurite@3.35.0
fi
