#!/usr/bin/env bash
# Passwords read from files, Secrets and the environment at run time.
PGPASSWORD="$(cat /run/secrets/postgres-password)" pg_dump -h db app
export PGPASSWORD="${POSTGRES_PASSWORD:?}"
PGPASSWORD=$(kubectl -n data get secret postgres -o jsonpath='{.data.password}' | base64 -d)
TOKEN=$(cat "$TOKEN_FILE")
read -r -s -p 'password: ' password
curl --token="$API_TOKEN" https://example.test/
if [ -z "$password" ]; then exit 1; fi
password_file=/etc/homelab/password
