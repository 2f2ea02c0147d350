// pg-boss on requeue's PostgreSQL workloads W1 and W3, the counterpart of
// requeue-postgres's side of `requeue bench --engine postgres --peers`,
// which runs this script right beside requeue on the same server; it can
// also be run by hand:
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench node bench.js \
//       --workload W3 --workers 8 [--items 20000] [--warmup 4000] [--tag TAG]
//
// What is run, mirroring requeue's side:
// - N distinct keys, each the `singletonKey` of its job, on a queue with
//   policy `short`: at most one job per key in state `created`, so that
//   pg-boss collapses a key added twice while its job is pending as
//   requeue does;
// - a completed job is marked `completed` (pg-boss's way: its maintenance
//   deletes completed jobs later; maintenance is off here, and the schema
//   is dropped after the run);
// - WORKERS concurrent adders (async loops sharing one PgBoss instance and
//   its pool, one `send` awaited at a time), and one `work` with
//   localConcurrency WORKERS and batchSize 1 as the WORKERS consumers, on a
//   queue with NOTIFY wake-ups on;
// - W1: every add returns before `work` starts; W3: `work` runs while the
//   adders add.
// The clock runs from the first add to the N-th completion stored in the
// database: the N-th job that pg-boss's own completion statement settled
// (seen by wrapping pg-boss's Manager#complete, which the worker awaits).
//
// Each pass uses a fresh schema (pg-boss's tables, created before the
// clock starts) and drops it afterwards. Before the timed pass, an untimed
// warm-up of WARMUP items (default 4000) takes the same path in another
// schema, so that V8 has compiled the hot code.
//
// Counters (see README.md): `statements` is what pg-boss's connections
// sent during the clock; `server` is the pg_stat_database delta over the
// timed pass, read on side connections once every backend that did the
// work has exited, minus what the framing itself adds.
//
// Output: one JSON line on stdout; exit status 0 if every item was
// processed exactly once and nothing was left, 2 if not, 1 on an error, 64
// on bad arguments.
'use strict';

const path = require('path');
const common = require('../pgcount');
const { PgBoss } = require('pg-boss');
// The class whose `complete` the worker awaits; the same module instance
// as pg-boss's own (one file URL).
const Manager = require(path.join(path.dirname(require.resolve('pg-boss')), 'manager.js')).default;

const USAGE =
  'usage: DATABASE_URL=postgres://USER@HOST:PORT/DB node bench.js --workload W1|W3 --workers N ' +
  '[--items N] [--warmup N] [--tag TAG] [--consumer fetch|work]';

// Completions stored, counted by Manager#complete once its statement returned.
let onComplete = null;
const complete = Manager.prototype.complete;
Manager.prototype.complete = async function (...args) {
  const response = await complete.apply(this, args);
  if (onComplete && response) onComplete(response.affected || 0);
  return response;
};

function schemaName(what) {
  return `requeue_peer_boss_${what}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
}

function newBoss(url, schema, workers, notify) {
  const boss = new PgBoss({
    connectionString: url,
    schema,
    max: 2 * workers + 2,
    // No maintenance or cron during the run: only the queue's own work.
    supervise: false,
    schedule: false,
    // LISTEN/NOTIFY wake-ups for `--consumer work` only: the `fetch`
    // consumers do not listen, so their queue does not notify.
    useListenNotify: notify,
  });
  boss.on('error', (e) => console.error(`pg-boss: ${e && e.message ? e.message : e}`));
  return boss;
}

async function pass({ url, workload, n, workers, timed, consumer }) {
  const schema = schemaName(timed ? 'timed' : 'warm');
  const queue = 'k';
  // Setup, untimed: pg-boss's schema and the queue, on connections closed
  // again before the counters are read.
  {
    const setup = newBoss(url, schema, 1, false);
    await setup.start();
    await setup.createQueue(queue, { policy: 'short', notify: consumer === 'work' });
    await setup.stop({ graceful: true, wait: true });
  }
  let overhead = null;
  let before = null;
  if (timed) {
    overhead = await common.framingOverhead(url);
    await common.waitNoOtherBackends(url);
    before = await common.readCounters(url);
  }
  common.stats.windowStatements = 0;
  common.stats.windowed = true;
  const boss = newBoss(url, schema, workers, consumer === 'work');
  await boss.start();
  const seen = new Set();
  let duplicates = 0;
  let handled = 0;
  let completed = 0;
  let stopped = 0n;
  let allDone;
  const done = new Promise((resolve) => (allDone = resolve));
  onComplete = (count) => {
    completed += count;
    if (completed >= n && stopped === 0n) {
      stopped = process.hrtime.bigint();
      allDone();
    }
  };
  const handler = async (jobs) => {
    for (const job of jobs) {
      handled++;
      if (seen.has(job.data.key)) duplicates++;
      seen.add(job.data.key);
    }
  };
  // `--consumer work`: pg-boss's own worker loop.
  const workOptions = { localConcurrency: workers, batchSize: 1, pollingIntervalSeconds: 0.5 };
  // `--consumer fetch` (the default): WORKERS loops of fetch, handle,
  // complete. A loop that finds the queue empty waits for the next add
  // (each add that returns wakes one waiting loop) or 500 ms, pg-boss's
  // shortest poll interval.
  const waiters = [];
  const wakeOne = () => {
    const waiter = waiters.shift();
    if (waiter) waiter();
  };
  const idle = () =>
    new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        const at = waiters.indexOf(wake);
        if (at >= 0) waiters.splice(at, 1);
        resolve();
      };
      const timer = setTimeout(wake, 500);
      waiters.push(wake);
    });
  let taken = 0;
  const fetcher = async () => {
    while (taken < n) {
      const jobs = await boss.fetch(queue, { batchSize: 1 });
      if (!jobs || jobs.length === 0) {
        if (taken < n) await idle();
        continue;
      }
      taken += jobs.length;
      await handler(jobs);
      await boss.complete(queue, jobs.map((job) => job.id));
    }
  };
  let fetchers = null;
  const consume = async () => {
    if (consumer === 'work') {
      await boss.work(queue, workOptions, handler);
    } else {
      fetchers = Promise.all(Array.from({ length: workers }, fetcher));
      fetchers.catch((e) => console.error(`consumer: ${e.message}`));
    }
  };
  const adder = async ([lo, hi]) => {
    for (let i = lo; i < hi; i++) {
      const key = common.keyOf(i);
      const id = await boss.send(queue, { key }, { singletonKey: key });
      if (!id) throw new Error(`send of ${key} created no job`);
      wakeOne();
    }
  };
  common.stats.statements = 0;
  common.stats.counting = true;
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  if (workload === 'W1') {
    await Promise.all(common.shares(n, workers).map(adder));
    await consume();
  } else {
    await consume();
    await Promise.all(common.shares(n, workers).map(adder));
  }
  await done;
  const cpu = process.cpuUsage(cpu0);
  common.stats.counting = false;
  const statements = common.stats.statements;
  onComplete = null;
  if (consumer === 'work') await boss.offWork(queue, { wait: true });
  else await fetchers;
  await boss.stop({ graceful: true, wait: true });
  common.stats.windowed = false;
  let server = null;
  if (timed) {
    const gone = await common.waitNoOtherBackends(url);
    const after = await common.readCounters(url);
    server = common.minus(common.minus(after, before), overhead);
    if (!gone) server.warning = 'some backends were still connected when the counters were read';
  }
  const { left, failed } = await common.side(url, async (c) => {
    const { rows } = await c.query(
      `SELECT count(*) FILTER (WHERE state <> 'completed')::int AS left,
              count(*) FILTER (WHERE state = 'failed')::int AS failed
         FROM "${schema}".job`,
    );
    await c.query(`DROP SCHEMA "${schema}" CASCADE`);
    return rows[0];
  });
  return {
    wallSeconds: Number(stopped - started) / 1e9,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    handled,
    completed,
    failed,
    duplicates,
    distinct: seen.size,
    left,
    statements,
    windowStatements: common.stats.windowStatements,
    server,
  };
}

async function main() {
  let args;
  let consumer = 'fetch';
  try {
    const argv = process.argv.slice(2);
    const at = argv.indexOf('--consumer');
    if (at >= 0) {
      consumer = argv[at + 1];
      argv.splice(at, 2);
      if (!['fetch', 'work'].includes(consumer)) throw new Error('--consumer must be fetch or work');
    }
    args = common.parseArgs(argv);
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    process.exit(64);
  }
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error(`DATABASE_URL is not set\n${USAGE}`);
    process.exit(64);
  }
  const { workload, workers, items: n, warmup } = args;
  if (warmup > 0) {
    const warm = await pass({ url, workload, n: warmup, workers, timed: false, consumer });
    if (warm.completed !== warmup || warm.duplicates) throw new Error('the warm-up lost items');
  }
  const r = await pass({ url, workload, n, workers, timed: true, consumer });
  const ok =
    r.completed === n && r.handled === n && r.failed === 0 && r.duplicates === 0 &&
    r.distinct === n && r.left === 0;
  console.log(
    JSON.stringify({
      system: 'pg-boss',
      pg_boss_version: common.versionOf('pg-boss'),
      pg_version: common.versionOf('pg'),
      node_version: process.version,
      workload,
      workers,
      items: n,
      warmup_items: warmup,
      tag: args.tag,
      consumer,
      ok,
      wall_seconds: r.wallSeconds,
      items_per_sec: n / r.wallSeconds,
      cpu_seconds: r.cpuSeconds,
      completed: r.completed,
      failed: r.failed,
      duplicates: r.duplicates,
      left: r.left,
      statements: r.statements,
      statements_per_item: r.statements / n,
      window_statements: r.windowStatements,
      server: r.server,
      server_per_item: r.server ? common.perItem(r.server, n) : null,
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    }),
  );
  process.exit(ok ? 0 : 2);
}

main().catch((e) => {
  console.error(e && e.message ? e.message : e);
  process.exit(1);
});
