-- Lookups that stay per key, whatever the planner believes about the
-- table. A queue's rows churn (each item is inserted, updated and deleted),
-- so its indexes hold many entries of dead rows between vacuums, while the
-- statistics count only the few live ones. Believing a queue holds a
-- handful of rows, the planner turned `key = ANY (keys)` and the joins on
-- `key` into one scan of the whole queue's range of the primary key, and
-- with it every dead entry there: measured on W3 with 32 workers, a
-- bitmap scan over 700 to 3,600 index entries to find 20 to 30 rows, a
-- fifth of the server's time.
--
-- Now every lookup by key is a LATERAL subquery on the full primary key
-- (one index descent per key), and statements that change rows just found
-- join them by their physical row id alone (`ctid`, a TID scan per row):
-- with no other condition on the changed table, that is the only plan
-- left, whatever the statistics say (a condition on `queue_id` or `state`
-- there let the planner prefer scanning a partial index it believed held
-- one row, and W1's claims passed 20,000 rows each). That is safe: a row
-- locked when found cannot have moved, and a row that moved (unlocked, a
-- lone done) fails the recheck of its row id and is left to the
-- one-by-one path. The
-- ordered lock pass keeps its global key order: the LATERAL subquery runs
-- once per key, in the order of the sorted keys. The hot functions also
-- turn off sequential and bitmap scans: a table that looked empty when a
-- plan was made must not make a scan of every page its plan, and a bitmap
-- scan never marks the dead index entries it passes (an index scan does,
-- so the next scan skips them). Their plans then stay index scans, which
-- is what these queries want at any table size.

CREATE OR REPLACE FUNCTION {schema}.claim(
  p_queue integer, p_lease_us bigint, p_nonce bigint, p_now bigint DEFAULT NULL,
  p_limit integer DEFAULT 1, p_promote integer DEFAULT 100
) RETURNS TABLE (item text, item_token bigint, item_added_us bigint, item_lease_us bigint,
                item_failures integer)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_lease_us IS NOT NULL
    AND p_nonce IS NOT NULL AND p_limit IS NOT NULL,
    'claim: queue, lease, nonce and limit are required');
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  -- RETURNING comes in no particular order: the result is sorted back
  -- into claim order, so a batch is handed out as the queue orders it.
  RETURN QUERY
  WITH picked AS (
    SELECT i.ctid AS row_id, i.key, i.added_us, i.priority, i.seq FROM {schema}.items i
    WHERE i.queue_id = p_queue AND i.state = 'q'
    ORDER BY i.priority DESC, i.seq
    LIMIT greatest(p_limit, 0)
    FOR UPDATE SKIP LOCKED
  ), leased AS (
    UPDATE {schema}.items i
    SET state = 'p', dirty = false, seq = NULL, added_us = NULL,
        lease_us = v_now + {schema}.clamp_us(p_lease_us),
        token = nextval('{schema}.seq'), nonce = p_nonce
    FROM picked
    WHERE i.ctid = picked.row_id
    RETURNING i.key, i.token, picked.added_us, i.lease_us, i.failures, picked.priority, picked.seq
  )
  SELECT l.key, l.token, l.added_us, l.lease_us, l.failures FROM leased l
  ORDER BY l.priority DESC, l.seq;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.batch(
  p_queue integer, p_now bigint, p_adds text[],
  p_keys text[], p_tokens bigint[], p_nonces bigint[], p_forget boolean[],
  p_claims integer, p_lease_us bigint, p_nonce bigint,
  p_reap integer, p_base_us bigint, p_max_us bigint, p_spare bigint,
  p_fairness integer, p_passed integer, p_promote integer DEFAULT 100
) RETURNS TABLE (out_kind "char", out_item text, out_token bigint, out_code integer,
                 out_added_us bigint, out_failures integer)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  v_n integer := coalesce(cardinality(p_keys), 0);
  v_nadds integer := coalesce(cardinality(p_adds), 0);
  v_codes integer[];
  v_reaped integer := 0;
  v_claimed integer := 0;
  v_passed integer := p_passed;
  r record;
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_claims IS NOT NULL
    AND p_lease_us IS NOT NULL AND p_nonce IS NOT NULL AND p_reap IS NOT NULL
    AND p_base_us IS NOT NULL AND p_max_us IS NOT NULL
    AND coalesce(cardinality(p_tokens), 0) = v_n
    AND coalesce(cardinality(p_nonces), 0) = v_n
    AND coalesce(cardinality(p_forget), 0) = v_n
    AND (v_n = 0 OR (array_position(p_keys, NULL) IS NULL
      AND array_position(p_tokens, NULL) IS NULL
      AND array_position(p_nonces, NULL) IS NULL
      AND array_position(p_forget, NULL) IS NULL))
    AND array_position(p_adds, NULL) IS NULL,
    'batch: queue, claims, lease, nonce, reap, base and max are required, '
    'the dones'' four arrays must be as long as each other, and no array may '
    'hold a NULL');
  PERFORM set_config('lock_timeout', '200ms', true);
  -- Every row this batch adds to or ends is locked first, in key order:
  -- batches (of any process) then take their locks in one global order
  -- and cannot deadlock each other. A row locked by someone else's open
  -- transaction makes this wait, at most the lock timeout. One key needs
  -- no order (every other lock a batch takes is SKIP LOCKED, never
  -- waited for), and a lock costs a write: skipped then.
  IF v_nadds + v_n > 1 THEN
    PERFORM 1
    FROM (SELECT DISTINCT k.key
          FROM unnest(coalesce(p_adds, '{}'::text[]) || coalesce(p_keys, '{}'::text[])) AS k(key)
          ORDER BY k.key) AS k,
         LATERAL (SELECT 1 FROM {schema}.items i
                  WHERE i.queue_id = p_queue AND i.key = k.key
                  FOR UPDATE) AS locked;
  END IF;
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  -- Adds. Keys without a row (the common case) are inserted queued by
  -- one statement, in the adds' order; a key given twice is inserted for
  -- its first add. Every other add is `add`'s transition, one by one.
  IF v_nadds > 0 THEN
    v_codes := array_fill(NULL::integer, ARRAY[v_nadds]);
    FOR r IN
      WITH inserted AS (
        INSERT INTO {schema}.items AS i (queue_id, key, state, dirty, seq, added_us, priority)
        SELECT p_queue, a.key, 'q', true, nextval('{schema}.seq'), v_now, 0
        FROM unnest(p_adds) WITH ORDINALITY AS a(key, ord)
        ORDER BY a.ord
        ON CONFLICT DO NOTHING
        RETURNING i.key
      )
      SELECT min(a.ord) AS ord
      FROM unnest(p_adds) WITH ORDINALITY AS a(key, ord)
      JOIN inserted USING (key)
      GROUP BY a.key
    LOOP
      v_codes[r.ord] := 1;
    END LOOP;
    PERFORM {schema}.wake(p_queue, n)
    FROM (SELECT count(*)::integer AS n FROM unnest(v_codes) c WHERE c = 1) queued
    WHERE n > 0;
    FOR i IN 1..v_nadds LOOP
      out_kind := 'a';
      out_item := p_adds[i];
      out_token := NULL;
      out_code := coalesce(v_codes[i], {schema}.add(p_queue, p_adds[i], v_now, 0::smallint, 0));
      out_added_us := NULL;
      out_failures := NULL;
      RETURN NEXT;
    END LOOP;
  END IF;
  -- Dones. A held key with nothing left to keep (not re-added, no delay,
  -- no failures or forgotten now: the common case) is deleted by one
  -- statement when its token and nonce match; every other done is
  -- `done`'s fenced transition, one by one.
  IF v_n > 0 THEN
    v_codes := array_fill(NULL::integer, ARRAY[v_n]);
    FOR r IN
      WITH d AS (
        SELECT * FROM unnest(p_keys, p_tokens, p_nonces, p_forget)
          WITH ORDINALITY AS d(key, token, nonce, forget, ord)
      ), found AS (
        SELECT d.ord, x.row_id FROM d,
          LATERAL (SELECT i2.ctid AS row_id FROM {schema}.items i2
                   WHERE i2.queue_id = p_queue AND i2.key = d.key AND i2.state = 'p'
                     AND i2.token = d.token AND i2.nonce = d.nonce AND NOT i2.dirty
                     AND i2.due_us IS NULL AND (i2.failures = 0 OR d.forget)) AS x
      )
      DELETE FROM {schema}.items i USING found
      WHERE i.ctid = found.row_id
      RETURNING found.ord
    LOOP
      v_codes[r.ord] := 1;
    END LOOP;
    -- Renewals recorded aside for the ended leases (rare: see `renewals`).
    DELETE FROM {schema}.renewals rn
    WHERE rn.queue_id = p_queue AND rn.key = ANY (p_keys)
      AND EXISTS (SELECT 1 FROM unnest(v_codes) c WHERE c = 1)
      AND NOT EXISTS (SELECT 1 FROM {schema}.items i
                      WHERE i.queue_id = p_queue AND i.key = rn.key AND i.state = 'p');
    FOR i IN 1..v_n LOOP
      out_kind := 'd';
      out_item := p_keys[i];
      out_token := p_tokens[i];
      out_code := coalesce(v_codes[i], {schema}.done(p_queue, p_keys[i], p_tokens[i],
                                                     p_nonces[i], v_now, p_forget[i], 0, false));
      out_added_us := NULL;
      out_failures := NULL;
      RETURN NEXT;
    END LOOP;
  END IF;
  IF p_reap > 0 THEN
    v_reaped := {schema}.reap(p_queue, v_now, p_reap, p_base_us, p_max_us, p_spare);
  END IF;
  IF p_claims > 0 THEN
    FOR r IN SELECT * FROM {schema}.claim_fair(p_queue, p_lease_us, p_nonce, v_now, p_claims,
                                                 p_fairness, p_passed)
    LOOP
      v_passed := r.passed;
      out_kind := 'c';
      out_item := r.item;
      out_token := r.item_token;
      out_code := NULL;
      out_added_us := r.item_added_us;
      out_failures := r.item_failures;
      v_claimed := v_claimed + 1;
      RETURN NEXT;
    END LOOP;
  END IF;
  out_kind := 'm';
  out_item := NULL;
  out_code := v_reaped;
  out_added_us := v_now;
  out_failures := v_passed;
  out_token := NULL;
  IF v_claimed < p_claims THEN
    out_token := least(
      (SELECT min(i.due_us) FROM {schema}.items i
       WHERE i.queue_id = p_queue AND i.due_us IS NOT NULL),
      (SELECT min(i.lease_us) FROM {schema}.items i
       WHERE i.queue_id = p_queue AND i.state = 'p'));
  END IF;
  RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.extend(
  p_queue integer, p_keys text[], p_tokens bigint[], p_nonces bigint[],
  p_lease_us bigint, p_now bigint DEFAULT NULL
) RETURNS SETOF text LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_lease_us IS NOT NULL
    AND cardinality(p_keys) = cardinality(p_tokens)
    AND cardinality(p_keys) = cardinality(p_nonces),
    'extend: queue and lease are required, and as many tokens and nonces as keys');
  RETURN QUERY
  WITH held AS (
    SELECT u.k, u.t, u.n FROM unnest(p_keys, p_tokens, p_nonces) AS u (k, t, n)
  ), mine AS (
    SELECT found.row_id FROM held,
      LATERAL (SELECT i.ctid AS row_id FROM {schema}.items i
               WHERE i.queue_id = p_queue AND i.key = held.k AND i.state = 'p'
                 AND i.token = held.t AND i.nonce = held.n
               FOR UPDATE SKIP LOCKED) AS found
  ), renewed AS (
    UPDATE {schema}.items i
    SET lease_us = greatest(i.lease_us, v_now + {schema}.clamp_us(p_lease_us))
    FROM mine
    WHERE i.ctid = mine.row_id
    RETURNING i.key
  ), tidied AS (
    -- A renewal recorded aside earlier is superseded by this one.
    DELETE FROM {schema}.renewals rn USING renewed
    WHERE rn.queue_id = p_queue AND rn.key = renewed.key
  ), aside AS (
    -- Still ours (this statement's snapshot says so) but locked by another
    -- transaction: the renewal is recorded beside the row, where `reap`
    -- reads it, so the live holder keeps its key.
    INSERT INTO {schema}.renewals AS rn (queue_id, key, token, nonce, lease_us)
    SELECT p_queue, held.k, held.t, held.n, v_now + {schema}.clamp_us(p_lease_us)
    FROM held
    WHERE held.k NOT IN (SELECT renewed.key FROM renewed)
      AND EXISTS (
        SELECT 1 FROM {schema}.items i
        WHERE i.queue_id = p_queue AND i.key = held.k AND i.state = 'p'
          AND i.token = held.t AND i.nonce = held.n
      )
    ON CONFLICT (queue_id, key) DO UPDATE
    SET token = excluded.token, nonce = excluded.nonce,
        lease_us = CASE WHEN rn.token = excluded.token AND rn.nonce = excluded.nonce
                        THEN greatest(rn.lease_us, excluded.lease_us)
                        ELSE excluded.lease_us END
    RETURNING rn.key
  )
  SELECT held.k FROM held
  WHERE held.k NOT IN (SELECT renewed.key FROM renewed)
    AND held.k NOT IN (SELECT aside.key FROM aside);
END
$$;
