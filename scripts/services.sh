#!/usr/bin/env bash
# Kept for old habits and scripts: the set-up now lives in scripts/setup.sh,
# which make test and make dev run themselves.
exec bash "$(dirname "$0")/setup.sh" test "$@"
