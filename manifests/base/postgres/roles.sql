-- Least privilege for the todo-functions database: one login role per function, one for KEDA,
-- and an owner role that owns every table. Run with psql by an administrator (a superuser, or a
-- role with CREATEROLE that owns the database), as often as you like: every statement is
-- idempotent. The Job in this folder runs it on Kubernetes; the real-platform harness runs it on
-- every start (system-tests/src/platform.rs).
--
-- Why each grant, proven on daprd v1.18.2 + PostgreSQL 15 by system-tests/tests/privileges.rs
-- (components-contrib v1.18.3, state.postgresql v1; docs/deploy.md, "PostgreSQL roles"):
--
-- * Every sidecar, at every start, for every state store it loads, runs
--   `CREATE TABLE IF NOT EXISTS <metadataTableName>`, and PostgreSQL checks CREATE on the schema
--   before it looks whether the table exists. So the metadata tables live in a schema of their
--   own, `dapr_metadata`, where the function roles have CREATE; the data tables stay in `public`,
--   where they have none. It then inserts a `lock` row (ON CONFLICT DO NOTHING: INSERT) and locks
--   it with SELECT ... FOR UPDATE (UPDATE on a column), then reads `migrations`. Row-level
--   security confines those writes to the `lock` row: no function can change the migration level
--   that every other sidecar reads at its start.
-- * The tables are created here, by the owner, exactly as Dapr's three migrations leave them,
--   and the metadata records migration level 3, so no sidecar migrates anything (a Dapr release
--   that adds a migration needs this file updated first: its sidecars then fail at init with
--   "permission denied", never half-migrate).
-- * Every write of state.postgresql v1 without an ETag, first-write included, is
--   `INSERT ... ON CONFLICT (key) DO UPDATE SET value, isbinary, updatedate, expiredate ... WHERE`,
--   and PostgreSQL requires UPDATE on the SET columns for the statement whether or not a row
--   conflicts. So even an insert-only writer gets UPDATE on those four columns. For the audit
--   table a trigger refuses every UPDATE: first-write on an existing row never reaches it (the
--   WHERE fails first: Dapr answers "no item was updated", the functions' AlreadyExists), a real
--   overwrite fails.
-- * TTL cleanup is off in every component (`cleanupInterval: "0"`; nothing uses TTLs): it would
--   need DELETE on the data table and an upsert of `last-cleanup` in the metadata table.
-- * The Query API, Get and bulk Get are SELECTs (with the `xmin` system column as ETag);
--   transactions are BEGIN/COMMIT around the same statements; v1 takes no advisory locks.
--
-- Passwords never appear here: see the end of the file. The indexes are in indexes.sql, applied
-- right after this file (they are built CONCURRENTLY, which no transaction may enclose).

\set ON_ERROR_STOP on

BEGIN;

-- Roles ----------------------------------------------------------------------------------------

DO $$
DECLARE
    name text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'todo_owner') THEN
        CREATE ROLE todo_owner NOLOGIN;
    END IF;
    FOREACH name IN ARRAY ARRAY['task_api', 'create_task', 'on_task_completed', 'fire_reminder',
                                'audit_writer', 'notifier', 'keda_reminders'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', name);
        END IF;
    END LOOP;
END
$$;

-- The administrator creates the tables as the owner (SET ROLE needs membership).
GRANT todo_owner TO CURRENT_USER;

-- Schemas --------------------------------------------------------------------------------------

-- Nobody but the owner creates anything in `public` (PostgreSQL 15's default; explicit for
-- older servers).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO todo_owner;
GRANT USAGE ON SCHEMA public TO task_api, create_task, on_task_completed, fire_reminder, audit_writer,
    notifier, keda_reminders;

CREATE SCHEMA IF NOT EXISTS dapr_metadata AUTHORIZATION todo_owner;
REVOKE ALL ON SCHEMA dapr_metadata FROM PUBLIC;
-- CREATE only because daprd runs CREATE TABLE IF NOT EXISTS on its metadata table at each start.
GRANT USAGE, CREATE ON SCHEMA dapr_metadata TO task_api, create_task, on_task_completed, fire_reminder,
    audit_writer, notifier;

-- Upgrade of a database the sidecars set up themselves (before this file existed): the metadata
-- tables move to their schema, every table goes to the owner.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['todo_tasks_metadata', 'todo_state_metadata', 'todo_audit_metadata'] LOOP
        IF to_regclass('public.' || name) IS NOT NULL AND to_regclass('dapr_metadata.' || name) IS NULL THEN
            EXECUTE format('ALTER TABLE public.%I SET SCHEMA dapr_metadata', name);
        END IF;
        IF to_regclass('dapr_metadata.' || name) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE dapr_metadata.%I OWNER TO todo_owner', name);
        END IF;
    END LOOP;
    FOREACH name IN ARRAY ARRAY['todo_tasks', 'todo_state', 'todo_audit'] LOOP
        IF to_regclass('public.' || name) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE public.%I OWNER TO todo_owner', name);
        END IF;
    END LOOP;
END
$$;

-- Tables, as the owner -------------------------------------------------------------------------

SET LOCAL ROLE todo_owner;

-- Exactly what state.postgresql v1's migrations 0 to 2 create (state/postgresql/v1/migrations.go).
CREATE TABLE IF NOT EXISTS public.todo_tasks (
    key text NOT NULL PRIMARY KEY,
    value jsonb NOT NULL,
    isbinary boolean NOT NULL,
    insertdate timestamp with time zone NOT NULL DEFAULT now(),
    updatedate timestamp with time zone NULL,
    expiredate timestamp with time zone,
    row_id bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY
);
CREATE UNIQUE INDEX IF NOT EXISTS todo_tasks_row_id_uidx ON public.todo_tasks (row_id);

CREATE TABLE IF NOT EXISTS public.todo_state (LIKE public.todo_tasks INCLUDING ALL);
CREATE TABLE IF NOT EXISTS public.todo_audit (LIKE public.todo_tasks INCLUDING ALL);
CREATE TABLE IF NOT EXISTS public.todo_notify (LIKE public.todo_tasks INCLUDING ALL);
CREATE TABLE IF NOT EXISTS public.todo_deliveries (LIKE public.todo_tasks INCLUDING ALL);

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['todo_tasks_metadata', 'todo_state_metadata', 'todo_audit_metadata',
                                'todo_notify_metadata', 'todo_deliveries_metadata'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS dapr_metadata.%I (key text NOT NULL PRIMARY KEY, value text NOT NULL)', name);
        -- Migration level 3: the tables above are complete. The lock row daprd would insert.
        EXECUTE format('INSERT INTO dapr_metadata.%I (key, value) VALUES (''migrations'', ''3''), (''lock'', ''lock'') ON CONFLICT (key) DO NOTHING', name);
        EXECUTE format('ALTER TABLE dapr_metadata.%I ENABLE ROW LEVEL SECURITY', name);
        EXECUTE format('DROP POLICY IF EXISTS read_all ON dapr_metadata.%I', name);
        EXECUTE format('CREATE POLICY read_all ON dapr_metadata.%I FOR SELECT USING (true)', name);
        EXECUTE format('DROP POLICY IF EXISTS lock_row_insert ON dapr_metadata.%I', name);
        EXECUTE format('CREATE POLICY lock_row_insert ON dapr_metadata.%I FOR INSERT WITH CHECK (key = ''lock'')', name);
        EXECUTE format('DROP POLICY IF EXISTS lock_row_update ON dapr_metadata.%I', name);
        EXECUTE format('CREATE POLICY lock_row_update ON dapr_metadata.%I FOR UPDATE USING (key = ''lock'') WITH CHECK (key = ''lock'')', name);
    END LOOP;
END
$$;

-- Instants as PostgreSQL compares them, for KEDA's wake-up queries (keda/fire-reminder.yaml,
-- keda/notifier.yaml) and the indexes that serve them (indexes.sql). A cast from text to
-- timestamptz is only STABLE, so it cannot be indexed: the result of a string without an offset
-- depends on the TimeZone setting, and DateStyle decides ambiguous forms like 01/02/2026. This
-- function is declared IMMUTABLE because every instant it is given is RFC 3339 with an explicit
-- offset, `Z` in practice (`remind_at`, `next_attempt_at`: chrono's DateTime<Utc> as serde
-- writes it): such a string names one instant whatever TimeZone and DateStyle say. Do not change
-- its body: an index keeps the values it computed, so a new meaning needs a new function (and
-- new indexes). It is not inlined into a query (PostgreSQL never inlines an IMMUTABLE SQL
-- function whose body is less than immutable), so a query calling it matches the index on it.
CREATE OR REPLACE FUNCTION public.todo_instant(text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS 'SELECT $1::timestamptz';

-- Audit entries are immutable: no role has DELETE on them, and this refuses every UPDATE, the
-- one audit-writer must be granted for Dapr's first-write upsert included.
CREATE OR REPLACE FUNCTION public.todo_audit_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are immutable: % of % refused', TG_OP, OLD.key
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE OR REPLACE TRIGGER todo_audit_immutable BEFORE UPDATE ON public.todo_audit
    FOR EACH ROW EXECUTE FUNCTION public.todo_audit_immutable();

-- Audit entries written to the `state` store before it was split move to the `audit` store
-- (key prefix `state||` becomes `audit||`, keyPrefix: name).
INSERT INTO public.todo_audit (key, value, isbinary, insertdate, updatedate, expiredate)
    SELECT 'audit||' || substr(key, length('state||') + 1), value, isbinary, insertdate, updatedate, expiredate
    FROM public.todo_state WHERE key LIKE 'state||audit:%'
    ON CONFLICT (key) DO NOTHING;
DELETE FROM public.todo_state WHERE key LIKE 'state||audit:%';

-- Grants ---------------------------------------------------------------------------------------

-- Start of any sidecar loading a store: the lock row (INSERT ... ON CONFLICT DO NOTHING, then
-- SELECT ... FOR UPDATE), the migration level (SELECT).
GRANT SELECT, INSERT, UPDATE (value) ON dapr_metadata.todo_tasks_metadata
    TO task_api, create_task, on_task_completed, fire_reminder;
GRANT SELECT, INSERT, UPDATE (value) ON dapr_metadata.todo_state_metadata TO task_api, fire_reminder;
GRANT SELECT, INSERT, UPDATE (value) ON dapr_metadata.todo_audit_metadata TO task_api, audit_writer;
GRANT SELECT, INSERT, UPDATE (value) ON dapr_metadata.todo_notify_metadata TO task_api, notifier;
GRANT SELECT, INSERT, UPDATE (value) ON dapr_metadata.todo_deliveries_metadata TO task_api, notifier;

-- `tasks`: task-api and create-task write tasks and their outbox records (ETag updates,
-- first-write inserts, deletes of published records); on-task-completed and fire-reminder only
-- read tasks.
GRANT SELECT, INSERT, UPDATE (value, isbinary, updatedate, expiredate), DELETE ON public.todo_tasks
    TO task_api, create_task;
GRANT SELECT ON public.todo_tasks TO on_task_completed, fire_reminder;

-- `state`: fire-reminder's reminder records (ETag updates and first-write inserts, never
-- deleted); task-api reads them (GET /v1/tasks/{id}/reminder).
GRANT SELECT, INSERT, UPDATE (value, isbinary, updatedate, expiredate) ON public.todo_state TO fire_reminder;
GRANT SELECT ON public.todo_state TO task_api;
-- KEDA's postgresql trigger of fire-reminder reads these two columns and nothing else.
GRANT SELECT (key, value) ON public.todo_state TO keda_reminders;

-- `audit`: audit-writer inserts (first-write; the UPDATE is the upsert's, refused by the
-- trigger above) and reads (its duplicate check); task-api reads the trail (Query API).
GRANT SELECT, INSERT, UPDATE (value, isbinary, updatedate, expiredate) ON public.todo_audit TO audit_writer;
GRANT SELECT ON public.todo_audit TO task_api;

-- `notify`: people's channels (addresses, webhook secrets). task-api writes them
-- (PUT /v1/me/notifications: ETag updates and first-write inserts; turning every channel off
-- saves an empty record, so no DELETE); the notifier only reads them, so a compromised notifier
-- cannot redirect anyone's reminders.
GRANT SELECT, INSERT, UPDATE (value, isbinary, updatedate, expiredate) ON public.todo_notify TO task_api;
GRANT SELECT ON public.todo_notify TO notifier;

-- `deliveries`: the notifier's delivery records (ETag updates and first-write inserts, never
-- deleted); task-api reads them (GET /v1/tasks/{id}/reminder).
GRANT SELECT, INSERT, UPDATE (value, isbinary, updatedate, expiredate) ON public.todo_deliveries TO notifier;
GRANT SELECT ON public.todo_deliveries TO task_api;
-- KEDA's postgresql trigger of the notifier counts retries coming due: these two columns only.
GRANT SELECT (key, value) ON public.todo_deliveries TO keda_reminders;

-- todo_instant: not PUBLIC's (a function is executable by everyone unless revoked). KEDA's role
-- calls it in both wake-up queries. PostgreSQL checks EXECUTE on a function in an index
-- expression as the role that writes the row, so the writers of the rows its partial indexes
-- hold (indexes.sql) need it too: fire-reminder (`scheduled` reminder records) and the notifier
-- (`retrying` delivery records). Without it their saves fail with "permission denied for
-- function todo_instant".
REVOKE ALL ON FUNCTION public.todo_instant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.todo_instant(text) TO keda_reminders, fire_reminder, notifier;

COMMIT;

-- Passwords, when given ------------------------------------------------------------------------

-- From psql's environment (psql 15+ `\getenv`), so they are on no command line: the Job sets
-- <ROLE>_PASSWORD from the per-app Secrets. A variable that is not set leaves the role's
-- password as it was (the harness uses trust authentication and sets none).
\getenv task_api_password TASK_API_PASSWORD
\if :{?task_api_password}
ALTER ROLE task_api PASSWORD :'task_api_password';
\endif
\getenv create_task_password CREATE_TASK_PASSWORD
\if :{?create_task_password}
ALTER ROLE create_task PASSWORD :'create_task_password';
\endif
\getenv on_task_completed_password ON_TASK_COMPLETED_PASSWORD
\if :{?on_task_completed_password}
ALTER ROLE on_task_completed PASSWORD :'on_task_completed_password';
\endif
\getenv fire_reminder_password FIRE_REMINDER_PASSWORD
\if :{?fire_reminder_password}
ALTER ROLE fire_reminder PASSWORD :'fire_reminder_password';
\endif
\getenv audit_writer_password AUDIT_WRITER_PASSWORD
\if :{?audit_writer_password}
ALTER ROLE audit_writer PASSWORD :'audit_writer_password';
\endif
\getenv notifier_password NOTIFIER_PASSWORD
\if :{?notifier_password}
ALTER ROLE notifier PASSWORD :'notifier_password';
\endif
\getenv keda_reminders_password KEDA_REMINDERS_PASSWORD
\if :{?keda_reminders_password}
ALTER ROLE keda_reminders PASSWORD :'keda_reminders_password';
\endif
