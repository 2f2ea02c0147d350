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

-- One round trip of a process's callers, in this order:
--   1. promotion of due delayed items (at most p_promote);
--   2. the plain adds of p_adds (priority 0), each as `add`;
--   3. the fenced dones: keys[i] under tokens[i] and nonces[i], forgetting
--      its failure count if forget[i]; a row locked by another
--      transaction is not waited for (-3 busy: the caller ends it alone);
--   4. at most p_reap expired leases reaped, with per-key backoff
--      (p_base_us, p_max_us);
--   5. at most p_claims items leased, under fresh tokens and p_nonce.
-- Rows, in that order: one 'a' per add (out_code as `add` returns), one
-- 'd' per done (out_code as `done` returns),
-- one 'c' per leased item (its key, token, add time, failure count),
-- then one 'm': out_code = leases reaped, out_added_us = the statement's
-- time, out_token = when a get could next succeed (the earliest due time
-- or lease deadline) if fewer than p_claims were leased, else NULL.
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
  p_reap integer, p_base_us bigint, p_max_us bigint, p_promote integer DEFAULT 100
) RETURNS TABLE (out_kind "char", out_item text, out_token bigint, out_code integer,
                 out_added_us bigint, out_failures integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  v_n integer := coalesce(cardinality(p_keys), 0);
  v_reaped integer := 0;
  v_claimed integer := 0;
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
  -- transaction makes this wait, at most the lock timeout.
  PERFORM 1 FROM {schema}.items i
  WHERE i.queue_id = p_queue
    AND i.key = ANY (coalesce(p_adds, '{}'::text[]) || coalesce(p_keys, '{}'::text[]))
  ORDER BY i.key
  FOR UPDATE;
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  FOR i IN 1..coalesce(cardinality(p_adds), 0) LOOP
    out_kind := 'a';
    out_item := p_adds[i];
    out_token := NULL;
    out_code := {schema}.add(p_queue, p_adds[i], v_now, 0::smallint, 0);
    out_added_us := NULL;
    out_failures := NULL;
    RETURN NEXT;
  END LOOP;
  FOR i IN 1..v_n LOOP
    out_kind := 'd';
    out_item := p_keys[i];
    out_token := p_tokens[i];
    out_code := {schema}.done(p_queue, p_keys[i], p_tokens[i], p_nonces[i], v_now,
                              p_forget[i], 0, false);
    out_added_us := NULL;
    out_failures := NULL;
    RETURN NEXT;
  END LOOP;
  IF p_reap > 0 THEN
    v_reaped := {schema}.reap(p_queue, v_now, p_reap, p_base_us, p_max_us);
  END IF;
  IF p_claims > 0 THEN
    FOR r IN SELECT * FROM {schema}.claim(p_queue, p_lease_us, p_nonce, v_now, p_claims, 0)
    LOOP
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
  out_failures := NULL;
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
