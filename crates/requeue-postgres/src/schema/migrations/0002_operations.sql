-- 0002_operations: the state machine's operations, as functions, so that
-- each is one statement (one round trip, atomic) and an add can run inside
-- the caller's transaction. They mirror the Redis engine's Lua scripts
-- (crates/requeue-redis/src/scripts/prelude.lua); docs/postgres.md §3.1
-- has the state rules, which the table's CHECK constraints enforce.
--
-- Every function checks its arguments before its first write, and any
-- error aborts the whole statement: there are no partial writes.
--
-- `p_now`: the time in µs, or NULL (production) for the server's clock.
-- Row locks: an operation on one key locks that key's row first, holding
-- no other lock while it may wait; everything else (promotion, claiming,
-- reaping, renewal) uses SKIP LOCKED and never waits, so no operation can
-- close a deadlock cycle, nor wait for a caller's open transaction except
-- on the very key that transaction touched.

-- Now in µs: the fake time if given, else the server's clock, read once
-- per statement (statement_timestamp()).
CREATE FUNCTION {schema}.now_us(p_now bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce(p_now, (extract(epoch FROM statement_timestamp()) * 1000000)::bigint)
$$;

-- A duration in µs clamped to [0, 2^63 - 1 ns] (requeue's NEVER, as the
-- Redis engine clamps), so that now + duration never overflows.
CREATE FUNCTION {schema}.clamp_us(p_us bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT least(greatest(coalesce(p_us, 0), 0), 9223372036854775)
$$;

-- client-go's ItemExponentialFailure: base * 2^n (n = earlier failures),
-- at most max (compared with >=); a base of 0 always waits 0.
CREATE FUNCTION {schema}.backoff_us(p_failures integer, p_base bigint, p_max bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN p_base <= 0 THEN 0
    WHEN p_base::numeric * power(2::numeric, least(greatest(p_failures, 0), 64)) >= p_max
      THEN {schema}.clamp_us(p_max)
    ELSE (p_base::numeric * power(2::numeric, least(greatest(p_failures, 0), 64)))::bigint
  END
$$;

-- Raises invalid_parameter_value unless every argument is present.
CREATE FUNCTION {schema}.require(p_ok boolean, p_what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_ok IS NOT TRUE THEN
    RAISE EXCEPTION 'requeue: %', p_what USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- Wakes idle getters of this queue (in every process): a NOTIFY on the
-- schema's channel, payload the queue's id, or "<id>:<n>" when n items
-- became ready at once (a process then wakes up to n getters instead of
-- one). Delivered when the transaction commits (never for a rolled-back
-- add); equal payloads are sent once per transaction, so many single
-- adds in one transaction wake one getter, which wakes the next while it
-- finds more. Called where an item becomes ready, or gets an earlier due
-- time that a sleeping getter does not know.
CREATE FUNCTION {schema}.wake(p_queue integer, p_n integer DEFAULT 1) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_notify('{channel}',
    CASE WHEN p_n > 1 THEN p_queue::text || ':' || p_n::text ELSE p_queue::text END)
$$;

-- Moves at most p_limit due delayed items into the queue, earliest first
-- (equal due times in key order); a held one is parked instead. Called
-- first by every operation that changes the queue, so that an item is
-- queued as of its due time, before anything that happens after it.
-- Rows locked elsewhere are skipped: another session is promoting them,
-- or a caller's transaction holds them (they are promoted by a later call).
CREATE FUNCTION {schema}.promote(p_queue integer, p_now bigint, p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  IF coalesce(p_limit, 0) <= 0 THEN
    RETURN 0;
  END IF;
  FOR r IN
    SELECT i.key, i.state FROM {schema}.items i
    WHERE i.queue_id = p_queue AND i.due_us <= p_now
    ORDER BY i.due_us, i.key
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  LOOP
    IF r.state = 'p' THEN
      UPDATE {schema}.items SET due_us = NULL, dirty = true, added_us = p_now
      WHERE queue_id = p_queue AND key = r.key;
    ELSE
      UPDATE {schema}.items
      SET state = 'q', due_us = NULL, dirty = true, added_us = p_now,
          seq = nextval('{schema}.seq')
      WHERE queue_id = p_queue AND key = r.key;
    END IF;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

-- client-go Add(): dedup on dirty, park while processing, else queue at
-- the tail; an immediate add cancels a pending delay.
-- Returns 0 dedup | 1 queued | 2 parked.
-- p_promote: how many due items to promote first (0 inside a caller's
-- transaction: promotion there would hold the promoted rows' locks until
-- the caller commits).
CREATE FUNCTION {schema}.add(
  p_queue integer, p_key text, p_now bigint DEFAULT NULL,
  p_priority smallint DEFAULT 0, p_promote integer DEFAULT 100
) RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  r record;
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_key IS NOT NULL
    AND p_priority IS NOT NULL, 'add: queue, key and priority are required');
  -- Lock the key's row (if any) before promoting: the only wait is then
  -- taken while holding no other lock, so this call cannot close a
  -- deadlock cycle; promotion itself never waits (SKIP LOCKED).
  PERFORM 1 FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  LOOP
    SELECT i.state, i.dirty INTO r FROM {schema}.items i
    WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO {schema}.items (queue_id, key, state, dirty, seq, added_us, priority)
      VALUES (p_queue, p_key, 'q', true, nextval('{schema}.seq'), v_now, p_priority)
      ON CONFLICT DO NOTHING;
      IF FOUND THEN
        PERFORM {schema}.wake(p_queue);
        RETURN 1;
      END IF;
      -- A concurrent add inserted it first: look again.
    ELSIF r.dirty THEN
      RETURN 0;
    ELSIF r.state = 'p' THEN
      UPDATE {schema}.items SET dirty = true, added_us = v_now, due_us = NULL
      WHERE queue_id = p_queue AND key = p_key;
      RETURN 2;
    ELSE
      UPDATE {schema}.items
      SET state = 'q', dirty = true, added_us = v_now, due_us = NULL,
          seq = nextval('{schema}.seq'), priority = p_priority
      WHERE queue_id = p_queue AND key = p_key;
      PERFORM {schema}.wake(p_queue);
      RETURN 1;
    END IF;
  END LOOP;
END
$$;

-- AddAfter: a delay <= 0 is an immediate add. An item already dirty
-- (queued or parked) is due anyway: the delay is ignored (0). Among delays
-- the earliest wins; a later one is ignored (0). 3 = delayed (new or moved
-- earlier); 1 and 2 as for add.
CREATE FUNCTION {schema}.add_after(
  p_queue integer, p_key text, p_delay_us bigint, p_now bigint DEFAULT NULL,
  p_priority smallint DEFAULT 0, p_promote integer DEFAULT 100
) RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  v_due bigint;
  r record;
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_key IS NOT NULL
    AND p_delay_us IS NOT NULL AND p_priority IS NOT NULL,
    'add_after: queue, key, delay and priority are required');
  IF p_delay_us <= 0 THEN
    RETURN {schema}.add(p_queue, p_key, v_now, p_priority, p_promote);
  END IF;
  -- Lock the key's row (if any) before promoting: the only wait is then
  -- taken while holding no other lock, so this call cannot close a
  -- deadlock cycle; promotion itself never waits (SKIP LOCKED).
  PERFORM 1 FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  v_due := v_now + {schema}.clamp_us(p_delay_us);
  LOOP
    SELECT i.state, i.dirty, i.due_us INTO r FROM {schema}.items i
    WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO {schema}.items (queue_id, key, state, due_us, priority)
      VALUES (p_queue, p_key, 'd', v_due, p_priority)
      ON CONFLICT DO NOTHING;
      IF FOUND THEN
        PERFORM {schema}.wake(p_queue);
        RETURN 3;
      END IF;
    ELSIF r.dirty OR r.due_us <= v_due THEN
      RETURN 0;
    ELSIF r.state = 'p' THEN
      UPDATE {schema}.items SET due_us = v_due
      WHERE queue_id = p_queue AND key = p_key;
      PERFORM {schema}.wake(p_queue);
      RETURN 3;
    ELSE
      UPDATE {schema}.items SET state = 'd', due_us = v_due, priority = p_priority
      WHERE queue_id = p_queue AND key = p_key;
      PERFORM {schema}.wake(p_queue);
      RETURN 3;
    END IF;
  END LOOP;
END
$$;

-- Expired leases (holder presumed dead): at most p_limit of them, oldest
-- first. Each counts a failure and comes back through delayed after the
-- per-key backoff (earliest delay wins; no backoff = queued now). A parked
-- item's pending add is carried by that re-add. Returns how many.
-- p_spare: a nonce whose leases are left alone (the calling process's
-- own, while its renewer is behind: after an outage it must renew them
-- before anything reaps them under it; other processes reap them if it
-- is gone).
CREATE FUNCTION {schema}.reap(
  p_queue integer, p_now bigint, p_limit integer, p_base_us bigint, p_max_us bigint,
  p_spare bigint DEFAULT NULL
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  v_delay bigint;
  r record;
  n integer := 0;
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_base_us IS NOT NULL
    AND p_max_us IS NOT NULL, 'reap: queue, base and max are required');
  IF coalesce(p_limit, 0) <= 0 THEN
    RETURN 0;
  END IF;
  FOR r IN
    SELECT i.key, i.failures, i.due_us FROM {schema}.items i
    WHERE i.queue_id = p_queue AND i.state = 'p' AND i.lease_us <= v_now
      AND i.nonce IS DISTINCT FROM p_spare
      AND NOT EXISTS (
        SELECT 1 FROM {schema}.renewals rn
        WHERE rn.queue_id = p_queue AND rn.key = i.key AND rn.token = i.token
          AND rn.nonce = i.nonce AND rn.lease_us > v_now
      )
    ORDER BY i.lease_us
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  LOOP
    v_delay := {schema}.backoff_us(r.failures, p_base_us, p_max_us);
    IF v_delay <= 0 THEN
      UPDATE {schema}.items
      SET state = 'q', dirty = true, added_us = v_now, due_us = NULL,
          seq = nextval('{schema}.seq'), lease_us = NULL, token = NULL, nonce = NULL,
          failures = least(failures, 2147483646) + 1
      WHERE queue_id = p_queue AND key = r.key;
    ELSE
      UPDATE {schema}.items
      SET state = 'd', dirty = false, added_us = NULL,
          due_us = least(coalesce(r.due_us, v_now + v_delay), v_now + v_delay),
          lease_us = NULL, token = NULL, nonce = NULL,
          failures = least(failures, 2147483646) + 1
      WHERE queue_id = p_queue AND key = r.key;
    END IF;
    DELETE FROM {schema}.renewals WHERE queue_id = p_queue AND key = r.key;
    n := n + 1;
  END LOOP;
  IF n > 0 THEN
    INSERT INTO {schema}.stats AS s (queue_id, lease_expired_total) VALUES (p_queue, n)
    ON CONFLICT (queue_id) DO UPDATE SET lease_expired_total = s.lease_expired_total + n;
    PERFORM {schema}.wake(p_queue);
  END IF;
  RETURN n;
END
$$;

-- Get: promote, then lease up to p_limit queued items (highest priority,
-- then FIFO) under fresh fencing tokens. SKIP LOCKED: concurrent claimers
-- take different rows and never wait for each other. Returns each item
-- with its token, its add time (queue-time metric), lease deadline and
-- failure count (NumRequeues, so a worker knows its attempt number).
CREATE FUNCTION {schema}.claim(
  p_queue integer, p_lease_us bigint, p_nonce bigint, p_now bigint DEFAULT NULL,
  p_limit integer DEFAULT 1, p_promote integer DEFAULT 100
) RETURNS TABLE (item text, item_token bigint, item_added_us bigint, item_lease_us bigint,
                item_failures integer)
LANGUAGE plpgsql AS $$
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
    SELECT i.key, i.added_us, i.priority, i.seq FROM {schema}.items i
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
    WHERE i.queue_id = p_queue AND i.key = picked.key
    RETURNING i.key, i.token, picked.added_us, i.lease_us, i.failures, picked.priority, picked.seq
  )
  SELECT l.key, l.token, l.added_us, l.lease_us, l.failures FROM leased l
  ORDER BY l.priority DESC, l.seq;
END
$$;

-- Fenced Done (and, with p_forget, Forget in the same statement):
-- -2 nobody holds it (reaped, or this done already ran and its reply was
-- lost) | -1 another lease holds it | 1 done | 2 requeued at the tail
-- (re-added while held; keeps its add time). A key left with nothing to
-- keep is deleted. With p_wait false, a row locked by another transaction
-- is not waited for: -3 busy, nothing changed (a batch of dones must not
-- stall behind one caller's open transaction; the caller retries alone).
CREATE FUNCTION {schema}.done(
  p_queue integer, p_key text, p_token bigint, p_nonce bigint,
  p_now bigint DEFAULT NULL, p_forget boolean DEFAULT false, p_promote integer DEFAULT 100,
  p_wait boolean DEFAULT true
) RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  v_failures integer;
  r record;
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_key IS NOT NULL
    AND p_token IS NOT NULL AND p_nonce IS NOT NULL AND p_forget IS NOT NULL
    AND p_wait IS NOT NULL,
    'done: queue, key, token, nonce, forget and wait are required');
  -- Lock the key's row (if any) before promoting: the only wait is then
  -- taken while holding no other lock, so this call cannot close a
  -- deadlock cycle; promotion itself never waits (SKIP LOCKED).
  IF p_wait THEN
    PERFORM 1 FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
  ELSE
    PERFORM 1 FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM {schema}.items i
                             WHERE i.queue_id = p_queue AND i.key = p_key) THEN
      RETURN -3;
    END IF;
  END IF;
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  SELECT i.state, i.dirty, i.token, i.nonce, i.failures, i.due_us INTO r
  FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
  IF NOT FOUND OR r.state <> 'p' THEN
    RETURN -2;
  END IF;
  IF r.token <> p_token OR r.nonce <> p_nonce THEN
    RETURN -1;
  END IF;
  v_failures := CASE WHEN p_forget THEN 0 ELSE r.failures END;
  DELETE FROM {schema}.renewals WHERE queue_id = p_queue AND key = p_key;
  IF r.dirty THEN
    UPDATE {schema}.items
    SET state = 'q', seq = nextval('{schema}.seq'), lease_us = NULL, token = NULL,
        nonce = NULL, failures = v_failures
    WHERE queue_id = p_queue AND key = p_key;
    PERFORM {schema}.wake(p_queue);
    RETURN 2;
  ELSIF r.due_us IS NOT NULL THEN
    UPDATE {schema}.items
    SET state = 'd', lease_us = NULL, token = NULL, nonce = NULL, failures = v_failures
    WHERE queue_id = p_queue AND key = p_key;
  ELSIF v_failures > 0 THEN
    UPDATE {schema}.items
    SET state = 'i', lease_us = NULL, token = NULL, nonce = NULL
    WHERE queue_id = p_queue AND key = p_key;
  ELSE
    DELETE FROM {schema}.items WHERE queue_id = p_queue AND key = p_key;
  END IF;
  RETURN 1;
END
$$;

-- Fenced renewal of many leases: each still held under its token and
-- nonce runs until now + lease (never shortened). Returns the keys whose
-- lease is lost.
--
-- Rows locked by another transaction are not waited for: a caller's long
-- transaction that re-added a held key must not stall the renewal of every
-- lease in the batch, and a renewal that never waits cannot deadlock.
-- Such a lease, still ours by the statement's snapshot, is renewed in the
-- `renewals` table instead, which reaping honours.
CREATE FUNCTION {schema}.extend(
  p_queue integer, p_keys text[], p_tokens bigint[], p_nonces bigint[],
  p_lease_us bigint, p_now bigint DEFAULT NULL
) RETURNS SETOF text LANGUAGE plpgsql AS $$
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
    SELECT i.key FROM {schema}.items i JOIN held ON i.key = held.k
    WHERE i.queue_id = p_queue AND i.state = 'p' AND i.token = held.t AND i.nonce = held.n
    FOR UPDATE OF i SKIP LOCKED
  ), renewed AS (
    UPDATE {schema}.items i
    SET lease_us = greatest(i.lease_us, v_now + {schema}.clamp_us(p_lease_us))
    FROM mine
    WHERE i.queue_id = p_queue AND i.key = mine.key
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

-- Fenced give-back (shutdown): the item goes to the HEAD of the queue
-- (the most recent release first, as the Redis engine's RPUSH), with no
-- failure counted; a pending delay is cancelled (the work is due now). A
-- parked item keeps its add time. Returns 1 released | -1 lease lost.
CREATE FUNCTION {schema}.release(
  p_queue integer, p_key text, p_token bigint, p_nonce bigint,
  p_now bigint DEFAULT NULL, p_promote integer DEFAULT 100
) RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  r record;
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_key IS NOT NULL
    AND p_token IS NOT NULL AND p_nonce IS NOT NULL,
    'release: queue, key, token and nonce are required');
  -- Lock the key's row (if any) before promoting: the only wait is then
  -- taken while holding no other lock, so this call cannot close a
  -- deadlock cycle; promotion itself never waits (SKIP LOCKED).
  PERFORM 1 FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  SELECT i.state, i.dirty, i.token, i.nonce INTO r
  FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
  IF NOT FOUND OR r.state <> 'p' OR r.token <> p_token OR r.nonce <> p_nonce THEN
    RETURN -1;
  END IF;
  DELETE FROM {schema}.renewals WHERE queue_id = p_queue AND key = p_key;
  UPDATE {schema}.items
  SET state = 'q', seq = -nextval('{schema}.seq'), dirty = true,
      added_us = CASE WHEN r.dirty THEN added_us ELSE v_now END,
      due_us = NULL, lease_us = NULL, token = NULL, nonce = NULL
  WHERE queue_id = p_queue AND key = p_key;
  PERFORM {schema}.wake(p_queue);
  RETURN 1;
END
$$;

-- Forget: the key's failure count goes back to 0; an idle key then has
-- nothing left and is deleted.
CREATE FUNCTION {schema}.forget(p_queue integer, p_key text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM {schema}.items
  WHERE queue_id = p_queue AND key = p_key AND state = 'i';
  UPDATE {schema}.items SET failures = 0
  WHERE queue_id = p_queue AND key = p_key AND failures <> 0;
END
$$;

-- NumRequeues: the key's failure count (0 when it has no row).
CREATE FUNCTION {schema}.num_requeues(p_queue integer, p_key text) RETURNS integer
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT failures FROM {schema}.items WHERE queue_id = p_queue AND key = p_key), 0)
$$;

-- golang.org/x/time/rate Reserve() on a bucket that starts full, as GCRA
-- on the queue's shared limiter row: T = 1e6/rate µs; TAT' = max(TAT, now)
-- + T; wait = TAT' - burst*T - now. A reservation is recorded even when it
-- must wait. A rate of 0 is x/time/rate's zero limit (the burst, then
-- never); a burst below 1 can never hold a token (never). Returns the wait
-- in µs (requeue's NEVER, clamped, for never).
CREATE FUNCTION {schema}.bucket_wait_us(
  p_queue integer, p_now bigint, p_rate double precision, p_burst double precision
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_never constant bigint := {schema}.clamp_us(9223372036854775);
  v_interval double precision;
  v_tat double precision;
  v_used bigint;
  v_wait double precision;
BEGIN
  IF p_burst < 1 THEN
    RETURN v_never;
  END IF;
  INSERT INTO {schema}.limiters (queue_id, tat_us) VALUES (p_queue, p_now)
  ON CONFLICT DO NOTHING;
  SELECT l.tat_us, l.zero_used INTO v_tat, v_used FROM {schema}.limiters l
  WHERE l.queue_id = p_queue FOR UPDATE;
  IF p_rate <= 0 THEN
    IF v_used < p_burst THEN
      UPDATE {schema}.limiters SET zero_used = zero_used + 1 WHERE queue_id = p_queue;
      RETURN 0;
    END IF;
    RETURN v_never;
  END IF;
  v_interval := 1000000.0 / p_rate;
  v_tat := greatest(v_tat, p_now::double precision) + v_interval;
  UPDATE {schema}.limiters SET tat_us = v_tat WHERE queue_id = p_queue;
  -- Whole µs (absorbs float noise), never early.
  v_wait := floor(v_tat - p_burst * v_interval - p_now + 0.5);
  IF v_wait <= 0 THEN
    RETURN 0;
  END IF;
  RETURN least(v_wait, v_never::double precision)::bigint;
END
$$;

-- AddRateLimited = AddAfter(key, MaxOf(configured limiters).When(key)).
-- Every configured limiter counts the attempt, as MaxOf asks all of them:
--   p_base_us, p_max_us       ItemExponential (NULL base: not configured)
--   p_fast_us, p_slow_us,
--   p_max_fast                ItemFastSlow (NULL fast: not configured)
--   p_rate, p_burst           TokenBucket, rate in tokens/s (NULL rate:
--                             not configured)
-- Returns the add_after code and the delay it asked for (µs).
CREATE FUNCTION {schema}.add_rate_limited(
  p_queue integer, p_key text, p_now bigint DEFAULT NULL,
  p_base_us bigint DEFAULT NULL, p_max_us bigint DEFAULT NULL,
  p_fast_us bigint DEFAULT NULL, p_slow_us bigint DEFAULT NULL, p_max_fast integer DEFAULT NULL,
  p_rate double precision DEFAULT NULL, p_burst double precision DEFAULT NULL,
  p_priority smallint DEFAULT 0, p_promote integer DEFAULT 100
) RETURNS TABLE (code smallint, delay_us bigint) LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := {schema}.now_us(p_now);
  v_exponential boolean := p_base_us IS NOT NULL;
  v_fast_slow boolean := p_fast_us IS NOT NULL;
  v_limited boolean := p_rate IS NOT NULL;
  v_n integer := 0;
  v_delay bigint := 0;
BEGIN
  PERFORM {schema}.require(p_queue IS NOT NULL AND p_key IS NOT NULL
    AND p_priority IS NOT NULL
    AND (NOT v_exponential OR p_max_us IS NOT NULL)
    AND (NOT v_fast_slow OR (p_slow_us IS NOT NULL AND p_max_fast IS NOT NULL))
    AND (NOT v_limited OR (p_burst IS NOT NULL AND p_rate = p_rate AND p_burst = p_burst)),
    'add_rate_limited: queue, key, priority and each configured limiter''s '
    'parameters are required (rate and burst not NaN)');
  -- Lock the key's row (if any) before promoting: the only wait is then
  -- taken while holding no other lock, so the key's wait cannot close a
  -- deadlock cycle (the limiter row comes last, after it, in every call); promotion itself never waits (SKIP LOCKED).
  PERFORM 1 FROM {schema}.items i WHERE i.queue_id = p_queue AND i.key = p_key FOR UPDATE;
  PERFORM {schema}.promote(p_queue, v_now, p_promote);
  -- NumRequeues: the per-key limiters count attempts; a bucket alone
  -- knows no keys (client-go's BucketRateLimiter.NumRequeues is 0).
  IF v_exponential OR v_fast_slow THEN
    INSERT INTO {schema}.items AS i (queue_id, key, state, failures)
    VALUES (p_queue, p_key, 'i', 1)
    ON CONFLICT (queue_id, key) DO UPDATE SET failures = least(i.failures, 2147483646) + 1
    RETURNING i.failures INTO v_n;
  END IF;
  IF v_exponential THEN
    v_delay := greatest(v_delay, {schema}.backoff_us(v_n - 1, p_base_us, p_max_us));
  END IF;
  IF v_fast_slow THEN
    v_delay := greatest(v_delay, {schema}.clamp_us(
      CASE WHEN v_n <= p_max_fast THEN p_fast_us ELSE p_slow_us END));
  END IF;
  IF v_limited THEN
    v_delay := greatest(v_delay, {schema}.bucket_wait_us(p_queue, v_now, p_rate, p_burst));
  END IF;
  INSERT INTO {schema}.stats AS s (queue_id, retries_total) VALUES (p_queue, 1)
  ON CONFLICT (queue_id) DO UPDATE SET retries_total = s.retries_total + 1;
  code := {schema}.add_after(p_queue, p_key, v_delay, v_now, p_priority, 0);
  delay_us := v_delay;
  RETURN NEXT;
END
$$;
