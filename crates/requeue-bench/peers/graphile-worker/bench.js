// graphile-worker on requeue's PostgreSQL workloads W1 and W3, the
// counterpart of requeue-postgres's side of `requeue bench --engine
// postgres --peers`, which runs this script right beside requeue on the
// same server; it can also be run by hand:
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench node bench.js \
//       --workload W3 --workers 8 [--items 20000] [--warmup 4000] [--tag TAG]
//
// What is run, mirroring requeue's side:
// - N distinct keys, each the `jobKey` of its job, so that graphile-worker
//   collapses a key added twice while its job is pending (job_key_mode
//   `replace`, the default) as requeue does;
// - graphile-worker deletes a job once it has completed, as requeue forgets
//   an item once it is done;
// - WORKERS concurrent adders (async loops sharing one WorkerUtils and its
//   pool, one `addJob` awaited at a time), and one runner with concurrency
//   WORKERS as the WORKERS consumers;
// - W1: every add returns before the runner starts; W3: the runner runs
//   while the adders add.
// The clock runs from the first add to the N-th completion stored in the
// database: the N-th job row deleted by graphile-worker's completion
// statement (seen by wrapping pg's Client#query; graphile-worker does not
// await the completion before its `job:complete` event).
//
// Each pass uses a fresh schema (graphile-worker's own tables, migrated
// before the clock starts) and drops it afterwards. Before the timed pass,
// an untimed warm-up of WARMUP items (default 4000) takes the same path in
// another schema, so that V8 has compiled the hot code.
//
// Counters (see README.md): `statements` is what graphile-worker's
// connections sent during the clock; `server` is the pg_stat_database
// delta over the timed pass, read on side connections once every backend
// that did the work has exited, minus what the framing itself adds.
//
// Output: one JSON line on stdout; exit status 0 if every item was
// processed exactly once and nothing was left, 2 if not, 1 on an error, 64
// on bad arguments.
'use strict';

const pg = require('pg');
const common = require('../pgcount');
const { run, makeWorkerUtils, Logger } = require('graphile-worker');

const USAGE =
  'usage: DATABASE_URL=postgres://USER@HOST:PORT/DB node bench.js --workload W1|W3 --workers N ' +
  '[--items N] [--warmup N] [--tag TAG]';

const silent = new Logger(() => (level, message) => {
  if (level === 'error') console.error(`graphile-worker: ${message}`);
});

function schemaName(what) {
  return `requeue_peer_gw_${what}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
}

async function pass({ url, workload, n, workers, timed }) {
  const schema = schemaName(timed ? 'timed' : 'warm');
  // Setup, untimed: graphile-worker's migrations into the fresh schema, on
  // connections closed again before the counters are read.
  {
    const setup = await makeWorkerUtils({ connectionString: url, schema, logger: silent });
    await setup.migrate();
    await setup.release();
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
  const pool = new pg.Pool({ connectionString: url, max: 2 * workers + 2 });
  // Errors of idle connections and of checked-out clients, as
  // graphile-worker asks of a pool it is given.
  pool.on('error', (e) => console.error(`pool: ${e.message}`));
  pool.on('connect', (client) => client.on('error', (e) => console.error(`client: ${e.message}`)));
  const utils = await makeWorkerUtils({ pgPool: pool, schema, logger: silent });
  const seen = new Set();
  let duplicates = 0;
  let handled = 0;
  let completed = 0;
  let failed = 0;
  let stopped = 0n;
  let allDone;
  const done = new Promise((resolve) => (allDone = resolve));
  const deleteMark = `${'"' + schema + '"'}._private_jobs`;
  common.setOnQuery((text, values, res) => {
    if (!text || !text.includes(deleteMark) || !/^(with j as \(\s*)?delete from/.test(text)) return;
    completed += res && typeof res.rowCount === 'number'
      ? res.rowCount
      : Array.isArray(values[0]) ? values[0].length : 1;
    if (completed >= n && stopped === 0n) {
      stopped = process.hrtime.bigint();
      allDone();
    }
  });
  const taskList = {
    k: async (payload) => {
      handled++;
      if (seen.has(payload.key)) duplicates++;
      seen.add(payload.key);
    },
  };
  const runnerOptions = {
    pgPool: pool,
    schema,
    concurrency: workers,
    noHandleSignals: true,
    logger: silent,
    taskList,
  };
  const adder = async ([lo, hi]) => {
    for (let i = lo; i < hi; i++) {
      const key = common.keyOf(i);
      await utils.addJob('k', { key }, { jobKey: key });
    }
  };
  let runner;
  common.stats.statements = 0;
  common.stats.counting = true;
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  if (workload === 'W1') {
    await Promise.all(common.shares(n, workers).map(adder));
    runner = await run(runnerOptions);
  } else {
    runner = await run(runnerOptions);
    await Promise.all(common.shares(n, workers).map(adder));
  }
  runner.events.on('job:failed', () => failed++);
  await done;
  const cpu = process.cpuUsage(cpu0);
  common.stats.counting = false;
  const statements = common.stats.statements;
  common.setOnQuery(null);
  await runner.stop();
  await utils.release();
  await pool.end();
  common.stats.windowed = false;
  let server = null;
  if (timed) {
    const gone = await common.waitNoOtherBackends(url);
    const after = await common.readCounters(url);
    server = common.minus(common.minus(after, before), overhead);
    if (!gone) server.warning = 'some backends were still connected when the counters were read';
  }
  const left = await common.side(url, async (c) => {
    const { rows } = await c.query(`SELECT count(*)::int AS n FROM "${schema}"._private_jobs`);
    await c.query(`DROP SCHEMA "${schema}" CASCADE`);
    return rows[0].n;
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
  try {
    args = common.parseArgs(process.argv.slice(2));
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
    const warm = await pass({ url, workload, n: warmup, workers, timed: false });
    if (warm.completed !== warmup || warm.duplicates) throw new Error('the warm-up lost items');
  }
  const r = await pass({ url, workload, n, workers, timed: true });
  const ok =
    r.completed === n && r.handled === n && r.failed === 0 && r.duplicates === 0 &&
    r.distinct === n && r.left === 0;
  console.log(
    JSON.stringify({
      system: 'graphile-worker',
      graphile_worker_version: common.versionOf('graphile-worker'),
      pg_version: common.versionOf('pg'),
      node_version: process.version,
      workload,
      workers,
      items: n,
      warmup_items: warmup,
      tag: args.tag,
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
