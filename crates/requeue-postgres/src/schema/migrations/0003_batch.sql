-- 0003_batch: what the queue type of the crate calls on its hot path.
-- The dones and gets of every worker of one process that arrive while a
-- call is on its way go together as one `batch` statement: one round
-- trip and one commit (one WAL flush) for all of them, which is what a
-- busy queue's throughput is made of. Each worker still gets its own
-- answer (one row per operation).

-- The queue's id, creating the queue on first use (by any process; two
-- openers race safely).
CREATE FUNCTION {schema}.open_queue(p_name text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_id integer;
BEGIN
  PERFORM {schema}.require(p_name IS NOT NULL, 'open_queue: name is required');
  LOOP
    SELECT q.id INTO v_id FROM {schema}.queues q WHERE q.name = p_name;
    IF FOUND THEN
      RETURN v_id;
    END IF;
    INSERT INTO {schema}.queues (name) VALUES (p_name)
    ON CONFLICT (name) DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
      RETURN v_id;
    END IF;
    -- Another process created it first: read it.
  END LOOP;
END
$$;

-- client-go's Len: the items a get could take now (queued, and delayed
-- ones already due, which the next operation promotes).
CREATE FUNCTION {schema}.len(p_queue integer, p_now bigint DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT (SELECT count(*) FROM {schema}.items i WHERE i.queue_id = p_queue AND i.state = 'q')
       + (SELECT count(*) FROM {schema}.items i
          WHERE i.queue_id = p_queue AND i.state = 'd'
            AND i.due_us <= {schema}.now_us(p_now))
$$;

-- Claims with fairness between priorities (the in-memory queue's rule):
-- normally the highest priority first (FIFO within it); after p_fairness
-- consecutive hand-outs that passed over an older item, the oldest ready
-- item goes next. p_passed is that count so far (kept by the caller's
-- process); each row carries the count after it. When every ready item
-- has one priority, nothing can be passed over: one set-based claim.
-- NULL p_fairness: strict priority order.
CREATE FUNCTION {schema}.claim_fair(
  p_queue integer, p_lease_us bigint, p_nonce bigint, p_now bigint,
  p_limit integer, p_fairness integer, p_passed integer
) RETURNS TABLE (item text, item_token bigint, item_added_us bigint, item_failures integer,
                 passed integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  v_passed integer := coalesce(p_passed, 0);
  v_top smallint;
  v_bottom smallint;
  v_first record;
  v_old record;
  v_key text;
BEGIN
  SELECT i.priority INTO v_top FROM {schema}.items i
  WHERE i.queue_id = p_queue AND i.state = 'q' ORDER BY i.priority DESC, i.seq LIMIT 1;
  SELECT i.priority INTO v_bottom FROM {schema}.items i
  WHERE i.queue_id = p_queue AND i.state = 'q' ORDER BY i.priority, i.seq DESC LIMIT 1;
  IF p_fairness IS NULL OR v_top IS NOT DISTINCT FROM v_bottom THEN
    -- One priority (or strict order): whatever is claimed is the oldest
    -- of its level, and no older item of another level waits.
    IF v_top IS NOT DISTINCT FROM v_bottom THEN
      v_passed := 0;
    END IF;
    RETURN QUERY
    SELECT c.item, c.item_token, c.item_added_us, c.item_failures, v_passed
    FROM {schema}.claim(p_queue, p_lease_us, p_nonce, v_now, p_limit, 0) c;
    RETURN;
  END IF;
  FOR slot IN 1..greatest(p_limit, 0) LOOP
    SELECT i.key, i.seq INTO v_first FROM {schema}.items i
    WHERE i.queue_id = p_queue AND i.state = 'q'
    ORDER BY i.priority DESC, i.seq LIMIT 1
    FOR UPDATE SKIP LOCKED;
    EXIT WHEN NOT FOUND;
    SELECT i.key, i.seq INTO v_old FROM {schema}.items i
    WHERE i.queue_id = p_queue AND i.state = 'q'
    ORDER BY i.seq LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF v_old.key = v_first.key THEN
      v_key := v_first.key;
      v_passed := 0;
    ELSIF v_passed >= p_fairness THEN
      v_key := v_old.key;
      v_passed := 0;
    ELSE
      v_key := v_first.key;
      v_passed := v_passed + 1;
    END IF;
    RETURN QUERY
    WITH leased AS (
      UPDATE {schema}.items i
      SET state = 'p', dirty = false, seq = NULL, added_us = NULL,
          lease_us = v_now + {schema}.clamp_us(p_lease_us),
          token = nextval('{schema}.seq'), nonce = p_nonce
      FROM (SELECT j.added_us AS was_added FROM {schema}.items j
            WHERE j.queue_id = p_queue AND j.key = v_key) before
      WHERE i.queue_id = p_queue AND i.key = v_key
      RETURNING i.key, i.token, before.was_added, i.failures
    )
    SELECT l.key, l.token, l.was_added, l.failures, v_passed FROM leased l;
  END LOOP;
END
$$;

-- One round trip of a process's callers, in this order:
--   1. promotion of due delayed items (at most p_promote);
--   2. the plain adds of p_adds (priority 0), each as `add`;
--   3. the fenced dones: keys[i] under tokens[i] and nonces[i], forgetting
--      its failure count if forget[i]; a row locked by another
--      transaction is not waited for (-3 busy: the caller ends it alone);
--   4. at most p_reap expired leases reaped, with per-key backoff
--      (p_base_us, p_max_us), except those claimed under nonce p_spare
--      (the caller's own, when it has not renewed them lately: after an
--      outage it must renew them before anything reaps them under it);
--   5. at most p_claims items leased, under fresh tokens and p_nonce (the
--      calling process's nonce, the same for all its leases), with the
--      fairness rule of `claim_fair` (p_fairness, p_passed).
-- Rows, in that order: one 'a' per add (out_code as `add` returns), one
-- 'd' per done (out_code as `done` returns),
-- one 'c' per leased item (its key, token, add time, failure count),
-- then one 'm': out_code = leases reaped, out_added_us = the statement's
-- time, out_token = when a get could next succeed (the earliest due time
-- or lease deadline) if fewer than p_claims were leased, else NULL,
-- out_failures = the fairness count after the claims.
-- Every argument is checked before the first write; any error aborts the
-- whole statement, so a failed batch changed nothing.
--
-- The rows it adds to or ends are locked first, in key order, so that
-- concurrent batches cannot deadlock. A row lock held by someone else's
-- open transaction (a caller's add of the same key, not yet committed)
-- is waited for at most 200 ms (lock_timeout, for this statement only):
-- then the batch fails with lock_not_available, changing nothing, and
-- the caller runs its operations one by one, so that only the one that
-- must wait does.
CREATE FUNCTION {schema}.batch(
  p_queue integer, p_now bigint, p_adds text[],
  p_keys text[], p_tokens bigint[], p_nonces bigint[], p_forget boolean[],
  p_claims integer, p_lease_us bigint, p_nonce bigint,
  p_reap integer, p_base_us bigint, p_max_us bigint, p_spare bigint,
  p_fairness integer, p_passed integer, p_promote integer DEFAULT 100
) RETURNS TABLE (out_kind "char", out_item text, out_token bigint, out_code integer,
                 out_added_us bigint, out_failures integer)
LANGUAGE plpgsql AS $$
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
    PERFORM 1 FROM {schema}.items i
    WHERE i.queue_id = p_queue
      AND i.key = ANY (coalesce(p_adds, '{}'::text[]) || coalesce(p_keys, '{}'::text[]))
    ORDER BY i.key
    FOR UPDATE;
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
      )
      DELETE FROM {schema}.items i USING d
      WHERE i.queue_id = p_queue AND i.key = d.key AND i.state = 'p'
        AND i.token = d.token AND i.nonce = d.nonce AND NOT i.dirty
        AND i.due_us IS NULL AND (i.failures = 0 OR d.forget)
      RETURNING d.ord
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
