#!/usr/bin/env bash
# Passwords on the command line and in the environment of scripts.
PGPASSWORD=hunter2hunter2xyz pg_dump -h db -U app app > app.sql
export API_TOKEN=tok_9f8e7d6c5b4a
curl -H "x" --token=ab12cd34ef56gh78 https://example.test/
mysql --password='Sup3r-S3cret' -u root
DB_PASS_TOKEN="0123abcd4567efgh"
