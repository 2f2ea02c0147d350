-- 0001_init: the tables of the queue state machine (docs/postgres.md,
-- "Data model" and "State rules"). `{schema}` is replaced by the quoted,
-- validated schema name before this runs, inside the migration's
-- transaction, under its advisory lock.

-- Queue positions (FIFO order) and fencing tokens, for every queue. A
-- sequence, not a counter row: nextval never waits for another
-- transaction's lock, and is never rolled back, so a token is never handed
-- out twice, even by a claim that rolled back. CACHE 1 (the default, kept
-- explicit): with a per-session cache two sessions would hand out values
-- out of order, and a later lease could carry a smaller token.
CREATE SEQUENCE {schema}.seq AS bigint MINVALUE 1 CACHE 1;

-- One row per queue: its name maps to a small id that every other table
-- is keyed by. Written when a queue is first opened, never on the hot
-- path.
CREATE TABLE {schema}.queues (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200)
);

-- One row per key that has any state: queued, processing (parked when
-- also dirty), delayed, or idle with a failure count kept for backoff.
-- A key with none of these has no row: done and forget DELETE it.
--
-- Columns are ordered for alignment (8-byte, then 4, 2, 1, then the
-- variable-length key) so a row stays as small as it can.
--
-- No foreign key to queues: it would cost a lookup and a KEY SHARE lock
-- on the queue's row for every insert; queue ids come from queues only.
CREATE TABLE {schema}.items (
  -- queued: position in FIFO order (from seq), smaller first.
  seq bigint,
  -- delayed (state 'd', or 'p' when re-added with a delay while held):
  -- when it is due, in µs of the server's clock (or fake time).
  due_us bigint,
  -- processing: the lease's deadline in µs. In no index, so an extend
  -- is a HOT update (no index insertion, reclaimed by page pruning).
  lease_us bigint,
  -- processing: the fencing token of the current lease (from seq).
  token bigint,
  -- processing: 64 random bits drawn by the claiming client. Fenced
  -- operations compare token AND nonce: after a failover to an
  -- asynchronous standby that missed the last claims, the sequence can
  -- hand out a token again, and the nonce still tells the two leases
  -- apart (as the Redis engine's "<epoch>:<nonce>" does).
  nonce bigint,
  -- dirty items: when they were added (the queue-time metric).
  added_us bigint,
  queue_id integer NOT NULL,
  -- NumRequeues: failures counted by the per-key limiters and reaping.
  failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
  priority smallint NOT NULL DEFAULT 0,
  -- 'q' queued, 'p' processing, 'd' delayed, 'i' idle (failures only).
  state "char" NOT NULL,
  -- Added again since it was handed out (client-go's dirty set); only
  -- meaningful while processing: queued items are dirty by definition.
  dirty boolean NOT NULL DEFAULT false,
  -- The item, as the codec encodes it (JSON for requeue's items).
  key text NOT NULL,
  PRIMARY KEY (queue_id, key),
  -- The state rules, enforced by the database: a bug or a hand edit that
  -- would break one fails instead of corrupting the queue.
  CONSTRAINT state_fields CHECK (
    CASE state
      WHEN 'q' THEN dirty AND seq IS NOT NULL AND due_us IS NULL
        AND lease_us IS NULL AND token IS NULL AND nonce IS NULL
      -- Processing may also be delayed (add_after while held), never
      -- delayed and parked at once: a delayed item is never dirty.
      WHEN 'p' THEN seq IS NULL AND NOT (dirty AND due_us IS NOT NULL)
        AND lease_us IS NOT NULL AND token IS NOT NULL AND nonce IS NOT NULL
      WHEN 'd' THEN NOT dirty AND seq IS NULL AND due_us IS NOT NULL
        AND lease_us IS NULL AND token IS NULL AND nonce IS NULL
      WHEN 'i' THEN NOT dirty AND failures > 0 AND seq IS NULL
        AND due_us IS NULL AND lease_us IS NULL AND token IS NULL
        AND nonce IS NULL
      ELSE false
    END
  ),
  CONSTRAINT added_iff_dirty CHECK ((added_us IS NOT NULL) = dirty)
) WITH (
  -- Room on each page for the new version of an updated row, so updates
  -- that touch no indexed column (extend, a failure count) stay HOT.
  fillfactor = 70,
  -- Rows churn (insert, update, delete per item) while the table stays
  -- small: vacuum after a fixed number of dead rows, not a fraction of a
  -- table that may be nearly empty, and without cost-based sleeps.
  -- Starting points, to be measured (docs/postgres.md, "Bloat").
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 2000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 20000,
  autovacuum_vacuum_cost_delay = 0,
  autovacuum_analyze_scale_factor = 0.05
);

-- The claim order: highest priority first, then FIFO. Partial, so it holds
-- only queued rows and stays as small as the backlog.
CREATE INDEX items_ready ON {schema}.items (queue_id, priority DESC, seq)
  WHERE state = 'q';

-- Promotion of due delayed items, earliest first (held ones included).
-- The oldest ready item, whatever its priority: the fairness rule serves
-- it after a run of hand-outs that passed it over (0003's claim_fair).
CREATE INDEX items_fifo ON {schema}.items (queue_id, seq)
  WHERE state = 'q';

CREATE INDEX items_delayed ON {schema}.items (queue_id, due_us)
  WHERE due_us IS NOT NULL;

-- Leases, for reaping: few rows (at most the handlers at work), scanned
-- with lease_us as a filter, so that lease_us stays out of every index.
CREATE INDEX items_processing ON {schema}.items (queue_id)
  WHERE state = 'p';

-- The token bucket shared by every process of a queue (GCRA: the
-- theoretical arrival time, as the Redis engine keeps it). Updated in
-- place by each rate-limited add; no indexed column changes, so HOT.
CREATE TABLE {schema}.limiters (
  -- In µs, fractional: the emission interval 1e6/rate is rarely whole,
  -- and rounding it at each reservation would drift the rate.
  tat_us double precision NOT NULL DEFAULT 0,
  -- Adds let through a zero-rate bucket's burst (client-go semantics).
  zero_used bigint NOT NULL DEFAULT 0,
  queue_id integer PRIMARY KEY
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);

-- Counters read by metrics and inspect. Updated only off the hot path (a
-- reaped lease, a retry), so they add no contention to adds and claims.
CREATE TABLE {schema}.stats (
  lease_expired_total bigint NOT NULL DEFAULT 0,
  retries_total bigint NOT NULL DEFAULT 0,
  queue_id integer PRIMARY KEY
) WITH (fillfactor = 50);

-- Renewals that could not be written into the lease's own row because
-- another transaction held its lock: a caller's transaction that re-added
-- the key while it was being processed (`add_in`), until it commits. The
-- holder is alive and renewing, so reaping must not take the key from it:
-- `reap` honours a deadline recorded here for the same lease (token and
-- nonce). A row lives while that lease does: the lease's end, reaping, or
-- its next renewal in place deletes it, so the table holds at most one
-- row per key being processed.
CREATE TABLE {schema}.renewals (
  queue_id integer NOT NULL,
  key text NOT NULL,
  token bigint NOT NULL,
  nonce bigint NOT NULL,
  lease_us bigint NOT NULL,
  PRIMARY KEY (queue_id, key)
);
