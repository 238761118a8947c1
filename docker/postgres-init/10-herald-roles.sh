#!/bin/sh
# Runs once, when the postgres container initializes its data directory (as the superuser): makes
# Herald's three roles without login and the login roles docker-compose.yml uses, so that nothing
# after this runs as a superuser. `herald migrate` (as herald_owner) then creates the schema and
# gives the roles their rights (see README, Security).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner_pw="$HERALD_OWNER_PASSWORD" -v app_pw="$HERALD_APP_PASSWORD" \
     -v admin_pw="$HERALD_ADMIN_TOOL_PASSWORD" -v analyst_pw="$HERALD_ANALYST_PASSWORD" <<'EOSQL'
CREATE ROLE herald_admin NOLOGIN;
CREATE ROLE herald_reader NOLOGIN;
CREATE ROLE herald_runtime NOLOGIN;
-- Owns the schema and runs `herald migrate`; not a superuser.
CREATE ROLE herald_owner LOGIN PASSWORD :'owner_pw';
ALTER DATABASE :"DBNAME" OWNER TO herald_owner;
-- The herald processes (worker, scheduler, webhooks).
CREATE ROLE herald_app LOGIN PASSWORD :'app_pw' IN ROLE herald_runtime;
-- Role settings apply to the role one logs in as: a transaction left open holds vacuum back.
ALTER ROLE herald_app SET idle_in_transaction_session_timeout = '60s';
-- The admin tool and analysts.
CREATE ROLE admin_tool LOGIN PASSWORD :'admin_pw' IN ROLE herald_admin;
CREATE ROLE analyst LOGIN PASSWORD :'analyst_pw' IN ROLE herald_reader;
EOSQL
