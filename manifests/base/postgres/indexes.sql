-- The indexes behind every query the system runs on the state tables, so that none of them reads
-- a whole table (issue 17: a million users), and the statistics the planner needs to pick them.
-- Run with psql by the same administrator right after roles.sql (which creates the tables, the
-- owner role and public.todo_instant), as often as you like: every statement is idempotent. The
-- postgres-roles Job runs both files; the real-platform harness runs both on every start
-- (system-tests/src/platform.rs), and system-tests/tests/query_plans.rs proves with EXPLAIN that
-- each query below uses its index.
--
-- An expression index serves a query only when the query's expression is the index's, operator
-- for operator. The Query API of state.postgresql v1 (components-contrib v1.18.4,
-- common/component/postgresql/v1/postgresql_query.go) compiles a filter or sort on field `a.b` to
-- `value->'a'->>'b'` (text), so every index here is on those exact expressions. daprd binds the
-- filter values as parameters ($1, $2, ...) of a prepared statement, and after five executions
-- PostgreSQL may plan it once for any values (a generic plan): an index whose WHERE names a
-- literal value could not be proven to apply then, so the indexes of daprd's queries are full
-- indexes or have a WHERE that holds whatever the parameter is (IS NOT NULL). KEDA sends its
-- queries as literal SQL, so theirs are partial.
--
-- Built CONCURRENTLY: the functions keep writing while an index builds (a plain CREATE INDEX
-- blocks every write to the table until it is done). That cannot run in a transaction, so this
-- file has none. An interrupted concurrent build (the Job's pod killed, a deadline) leaves an
-- INVALID index under its name, which IF NOT EXISTS would then keep forever, unused but
-- maintained on every write; it is dropped first, so that a re-run builds it again.
--
-- An index's definition never changes under its name: a changed expression gets a new name, and
-- the old name is dropped here.

\set ON_ERROR_STOP on

-- A build on a large table takes minutes (each concurrent build reads the table twice): no
-- statement timeout a managed server may set by default.
SET statement_timeout = 0;

-- As the owner, like the tables (roles.sql made the administrator a member).
SET ROLE todo_owner;

-- What an interrupted build left INVALID (see above), dropped so that the CREATE below builds
-- it again.
SELECT format('DROP INDEX CONCURRENTLY IF EXISTS public.%I', c.relname)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND NOT i.indisvalid
  AND c.relname IN ('todo_tasks_owner_created', 'todo_tasks_owner_updated', 'todo_tasks_owner_due',
                    'todo_tasks_owner_priority', 'todo_tasks_owner_title', 'todo_tasks_outbox', 'todo_audit_task',
                    'todo_state_reminders_due', 'todo_deliveries_retries_due')
\gexec

-- Superseded: docs/deploy.md used to suggest creating this one by hand for fire-reminder's
-- wake-up query, which todo_state_reminders_due below serves.
DROP INDEX CONCURRENTLY IF EXISTS public.todo_state_scheduled_reminders;

-- `tasks` (todo_tasks) ---------------------------------------------------------------------------

-- Order keys of tasks stored before tasks carried them, computed exactly as
-- shared/todo-core/src/order.rs `OrderKeys::of` does (system-tests/tests/query_plans.rs holds the
-- two to each other): without them a task is in no list the store sorts. Tombstones get none,
-- as the functions write them. One UPDATE of the tasks without keys, a no-op (one scan) once
-- every task has them; it changes their ETag, so a client holding an old one is asked to read
-- again (412), as after any other write.
CREATE OR REPLACE FUNCTION pg_temp.todo_order_key(payload numeric) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN rtrim(substr(s, 7), '0') = '' THEN left(s, 6)
                ELSE left(s, 6) || '.' || rtrim(substr(s, 7), '0') END
    FROM (SELECT (100000000000000 + least(greatest(floor(payload), 0), 99999999999999))::bigint::text AS s) AS k
$$;
CREATE OR REPLACE FUNCTION pg_temp.todo_millis(at text) RETURNS numeric
    LANGUAGE sql IMMUTABLE AS $$
    SELECT least(greatest(floor(extract(epoch FROM at::timestamptz) * 1000), 0), 9999999999999)
$$;
UPDATE public.todo_tasks AS t
SET value = t.value || jsonb_build_object('_order', jsonb_build_object(
        'created', pg_temp.todo_order_key(k.created),
        'updated', pg_temp.todo_order_key(pg_temp.todo_millis(t.value->>'updated_at')),
        'due', pg_temp.todo_order_key(CASE
            WHEN t.value->>'due' IS NULL THEN 90000000000000 + k.created
            ELSE least(greatest(floor(extract(epoch FROM (t.value->>'due')::timestamptz) * 100), 0), 89999999999999) END),
        'priority', pg_temp.todo_order_key(k.rank * 10000000000000 + k.created),
        'tie', pg_temp.todo_order_key((('x' || substr(replace(t.value->>'id', '-', ''), 1, 12))::bit(48)::bigint >> 2)::numeric)))
FROM (SELECT key,
             pg_temp.todo_millis(value->>'created_at') AS created,
             CASE value->>'priority' WHEN 'low' THEN 0 WHEN 'high' THEN 2 WHEN 'urgent' THEN 3 ELSE 1 END AS rank
      FROM public.todo_tasks
      WHERE key LIKE 'tasks||task:%' AND NOT value ? '_order' AND value->>'deleted_at' IS NULL) AS k
WHERE t.key = k.key;

-- The title group (`title_group` in order.rs: the first characters of the lower-cased title as
-- seven base-99 digits) of every live task without one: tasks stored before titles had a group,
-- and those the UPDATE above just gave their other keys. Lower-casing is Unicode's full mapping,
-- as Rust's `to_lowercase` does it (İ to i and a combining dot, a final sigma to ς): ICU's, from
-- the `und-x-icu` collation PostgreSQL creates when built with ICU (the Debian and official
-- images are); without it, the database's own `lower`, which agrees for all but such cases.
DO $do$
DECLARE
    lowered text := CASE WHEN EXISTS (SELECT FROM pg_collation WHERE collname = 'und-x-icu')
                         THEN 'lower(title COLLATE "und-x-icu")' ELSE 'lower(title)' END;
BEGIN
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION pg_temp.todo_title_group(title text) RETURNS text
            LANGUAGE plpgsql IMMUTABLE AS $body$
        DECLARE
            digits int[] := '{}';
            code int;
            offs int;
            payload numeric := 0;
        BEGIN
            FOR code IN SELECT ascii(c) FROM regexp_split_to_table(%s, '') AS c LOOP
                IF code BETWEEN 32 AND 126 THEN
                    digits := digits || (code - 30);
                ELSIF code < 32 THEN
                    digits := digits || 1;
                    EXIT;
                ELSIF code = 127 THEN
                    digits := digits || 97;
                    EXIT;
                ELSE
                    offs := least(code - 128, 970298);
                    digits := digits || ARRAY[98, offs / 9801, (offs / 99) %% 99, offs %% 99];
                    EXIT WHEN offs = 970298;
                END IF;
                EXIT WHEN cardinality(digits) >= 7;
            END LOOP;
            FOR i IN 1..7 LOOP
                payload := payload * 99 + coalesce(digits[i], 0);
            END LOOP;
            RETURN pg_temp.todo_order_key(payload);
        END
        $body$ $f$, lowered);
END
$do$;
UPDATE public.todo_tasks
SET value = jsonb_set(value, '{_order,title}', to_jsonb(pg_temp.todo_title_group(value->>'title')))
WHERE key LIKE 'tasks||task:%' AND value ? '_order' AND NOT value->'_order' ? 'title'
  AND value->>'deleted_at' IS NULL;


-- The task list, task-api GET /v1/tasks (and the MCP list tool; functions/task-api/src/
-- listing.rs): one user's tasks in one order, a page at a time,
--   WHERE (value->>'owner'=$1 [AND value->>'status'=$2] [AND (value->>'priority'=$3 OR ...)]
--          [AND value->'_order'->>'due'>=$4 AND ...<=$5]  AND value->'_order'->>'<F>'>=$6
--          [AND (<F> > $7 OR (<F> = $7 AND value->'_order'->>'tie' >= $8))])
--   ORDER BY value->'_order'->>'<F>' ASC, value->'_order'->>'tie' ASC, value->>'id' ASC LIMIT n
-- (or <=, <, DESC throughout) for F = created, updated, due, priority, the order keys of
-- shared/todo-core/src/order.rs. Each index finds the owner's tasks and reads them in F order,
-- forwards or backwards from the page's first key (the bound on F is always there), so a page
-- costs about its own rows, not the user's whole list; a narrow due range may be read through
-- the due index instead. F = title is the title group: the title sort ranges over groups
-- like the others, and reads one group whole with `value->'_order'->>'title'=$n` (task-api
-- orders a group by the full title).
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_tasks_owner_created
    ON public.todo_tasks ((value->>'owner'), (value->'_order'->>'created'));
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_tasks_owner_updated
    ON public.todo_tasks ((value->>'owner'), (value->'_order'->>'updated'));
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_tasks_owner_due
    ON public.todo_tasks ((value->>'owner'), (value->'_order'->>'due'));
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_tasks_owner_priority
    ON public.todo_tasks ((value->>'owner'), (value->'_order'->>'priority'));
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_tasks_owner_title
    ON public.todo_tasks ((value->>'owner'), (value->'_order'->>'title'));

-- Statistics, not an index: how common each status and priority is. PostgreSQL keeps none for
-- an expression no index is on, and assumes any `value->>'status' = $n` matches 0.5 % of the
-- rows; a list filtered on status and priority then looks like a row or two, and the planner
-- reads all of the owner's tasks and sorts them rather than walk the sort key's index for the
-- first page (seen on the real platform: tests/query_plans.rs). With these it knows that most
-- tasks are open. (CREATE STATISTICS takes no lock that blocks writes.)
CREATE STATISTICS IF NOT EXISTS public.todo_tasks_status_priority
    ON (value->>'status'), (value->>'priority') FROM public.todo_tasks;

-- The outbox relay of every task-api replica (shared/dapr-fn/src/outbox.rs, `relay_query`), every few
-- seconds:
--   WHERE value->>'outbox_record'=$1 ORDER BY value->>'written_at' ASC LIMIT n
-- Only outbox records have the field, and a record lives from its write to its publish (a crash
-- leftover until the relay), so the index holds a handful of rows however many tasks there are.
-- Its WHERE holds for any value of $1 (`=` is strict: a match is never NULL), so a generic plan
-- uses it too.
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_tasks_outbox
    ON public.todo_tasks ((value->>'outbox_record'), (value->>'written_at'))
    WHERE (value->>'outbox_record') IS NOT NULL;

-- `audit` (todo_audit) ---------------------------------------------------------------------------

-- A task's audit trail, task-api GET /v1/tasks/{id}/audit:
--   WHERE (value->>'task_id'=$1 AND value->>'owner'=$2) ORDER BY value->>'event_id' ASC LIMIT n
-- A task has a few entries; the owner is checked on those rows.
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_audit_task
    ON public.todo_audit ((value->>'task_id'));

-- `state` (todo_state) ---------------------------------------------------------------------------

-- KEDA's wake-up query of fire-reminder (keda/fire-reminder.yaml), every polling interval:
--   WHERE key LIKE 'state||reminder:%' AND value->>'status' = 'scheduled'
--   AND public.todo_instant(value->>'remind_at') BETWEEN now() - interval '1 day' AND ...
-- Only reminders still `scheduled` are in it (fired and cancelled ones are most of the table).
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_state_reminders_due
    ON public.todo_state (public.todo_instant(value->>'remind_at'))
    WHERE value->>'status' = 'scheduled';

-- `deliveries` (todo_deliveries) -----------------------------------------------------------------

-- KEDA's wake-up query of the notifier (keda/notifier.yaml):
--   WHERE key LIKE 'deliveries||delivery:%' AND value->>'status' = 'retrying'
--   AND public.todo_instant(value->>'next_attempt_at') BETWEEN now() - interval '1 day' AND ...
-- Only deliveries waiting for a retry are in it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_deliveries_retries_due
    ON public.todo_deliveries (public.todo_instant(value->>'next_attempt_at'))
    WHERE value->>'status' = 'retrying';

-- The planner knows an index expression's values, and the statistics above, only from the next
-- ANALYZE, which autovacuum runs on a large table only after a good part of it changed. Each
-- ANALYZE reads a sample of a few tens of thousands of rows, and blocks no write.
ANALYZE public.todo_tasks, public.todo_audit, public.todo_state, public.todo_deliveries;

RESET ROLE;
