// BullMQ on requeue's Redis workloads W1 and W3, the counterpart of
// crates/requeue-bench/src/redis.rs. `requeue bench --engine redis --peers`
// runs this script right beside requeue-redis on the same server; it can
// also be run by hand:
//
//   REDIS_URL=redis://127.0.0.1:6379/ node bench.js --workload W3 --workers 8 \
//       [--items 20000] [--warmup 4000] [--tag TAG]
//
// What is run, mirroring requeue's side:
// - N distinct keys, each the jobId of its job, so that BullMQ collapses a
//   key added twice as requeue does;
// - jobs are removed once completed (removeOnComplete), as requeue forgets
//   an item once it is done;
// - WORKERS concurrent adders (async loops sharing the Queue's connection,
//   one `queue.add` awaited at a time), and one Worker with concurrency
//   WORKERS as the WORKERS consumers;
// - W1: every add returns before the Worker starts; W3: the Worker runs
//   while the adders add.
// The clock runs from the first add to the N-th `completed` event, which
// BullMQ emits once the job's completion is stored in Redis.
//
// Before the timed part an untimed warm-up of WARMUP items (default 4000)
// takes the same path on another queue, so that V8 has compiled the hot
// code (requeue is compiled ahead of time).
//
// A side connection frames the timed part: it sends `ECHO
// requeue-peers:TAG:start` and reads `INFO commandstats` just before the
// clock starts, and reads `INFO commandstats` again and sends `ECHO
// requeue-peers:TAG:stop` just after it stops. The INFO delta is what Redis
// executed meanwhile (commands run inside Lua scripts included); the ECHO
// lines let a MONITOR client see where the timed part begins and ends.
//
// Every queue gets a fresh name and is obliterated afterwards, so runs
// against one server leave nothing behind. Output: one JSON line on stdout;
// exit status 0 if every item was processed exactly once and nothing was
// left waiting, 2 if not, 1 on an error, 64 on bad arguments.
'use strict';

const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const USAGE =
  'usage: REDIS_URL=redis://HOST:PORT/[DB] node bench.js --workload W1|W3 --workers N ' +
  '[--items N] [--warmup N] [--tag TAG]';

// Same shape as requeue's Kubernetes-like keys (namespace/name).
function keyOf(i) {
  return `ns-${i % 16}/obj-${i}`;
}

// `0..n` cut into `parts` contiguous ranges, as requeue's bench splits it.
function shares(n, parts) {
  const out = [];
  for (let p = 0; p < parts; p++) {
    out.push([Math.floor((n * p) / parts), Math.floor((n * (p + 1)) / parts)]);
  }
  return out;
}

// `INFO commandstats` text -> {command: calls}.
function parseCommandstats(text) {
  const calls = {};
  for (const line of text.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) calls[m[1]] = Number(m[2]);
  }
  return calls;
}

function delta(before, after) {
  const out = {};
  for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[name] || 0) - (before[name] || 0);
    if (d) out[name] = d;
  }
  return out;
}

// ioredis options from a redis:// or rediss:// URL, so that BullMQ opens
// its own connections (one per Queue, two per Worker) from them.
function connectionFrom(text) {
  let url;
  try {
    url = new URL(text);
  } catch (e) {
    throw new Error('REDIS_URL is not a URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new Error(`REDIS_URL: unsupported scheme ${url.protocol} (use redis:// or rediss://)`);
  }
  const options = {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: Number(url.port || 6379),
    // BullMQ requires this for the Worker's blocking connection.
    maxRetriesPerRequest: null,
  };
  if (url.username) options.username = decodeURIComponent(url.username);
  if (url.password) options.password = decodeURIComponent(url.password);
  const db = url.pathname.replace(/^\//, '');
  if (db) options.db = Number(db);
  if (url.protocol === 'rediss:') options.tls = {};
  return options;
}

function parseArgs(argv) {
  const args = { items: 20000, warmup: 4000, tag: `${process.pid}` };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case '--workload': args.workload = value; break;
      case '--workers': args.workers = Number(value); break;
      case '--items': args.items = Number(value); break;
      case '--warmup': args.warmup = Number(value); break;
      case '--tag': args.tag = value; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  const count = (v) => Number.isInteger(v) && v >= 0;
  if (!['W1', 'W3'].includes(args.workload)) throw new Error('--workload must be W1 or W3');
  if (!count(args.workers) || args.workers < 1) throw new Error('--workers must be at least 1');
  if (!count(args.items) || args.items < 1) throw new Error('--items must be at least 1');
  if (!count(args.warmup)) throw new Error('--warmup must be 0 or more');
  return args;
}

function queueName(what) {
  return `requeue-peer-${what}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

// One run of `workload` over a fresh queue. With `side`, the timed part is
// framed by the markers and INFO reads described above.
async function pass({ workload, n, workers, connection, side, tag }) {
  const name = queueName(side ? 'timed' : 'warm');
  const queue = new Queue(name, {
    connection,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  const seen = new Set();
  let duplicates = 0;
  let completed = 0;
  let failed = 0;
  let stopped = 0n;
  let allDone;
  const done = new Promise((resolve) => (allDone = resolve));
  const worker = new Worker(
    name,
    async (job) => {
      if (seen.has(job.data)) duplicates++;
      seen.add(job.data);
      return null;
    },
    { connection, concurrency: workers, autorun: false },
  );
  worker.on('completed', () => {
    completed++;
    if (completed === n) {
      stopped = process.hrtime.bigint();
      allDone();
    }
  });
  worker.on('failed', () => failed++);
  worker.on('error', (e) => console.error('worker error:', e.message));
  await queue.waitUntilReady();
  await worker.waitUntilReady();

  const adder = async ([lo, hi]) => {
    for (let i = lo; i < hi; i++) {
      const key = keyOf(i);
      await queue.add('k', key, { jobId: key });
    }
  };
  let before = null;
  if (side) {
    await side.echo(`requeue-peers:${tag}:start`);
    before = parseCommandstats(await side.info('commandstats'));
  }
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  if (workload === 'W1') {
    await Promise.all(shares(n, workers).map(adder));
    worker.run().catch((e) => console.error('worker run:', e.message));
  } else {
    worker.run().catch((e) => console.error('worker run:', e.message));
    await Promise.all(shares(n, workers).map(adder));
  }
  await done;
  const cpu = process.cpuUsage(cpu0);
  let commands = null;
  if (side) {
    const after = parseCommandstats(await side.info('commandstats'));
    await side.echo(`requeue-peers:${tag}:stop`);
    commands = delta(before, after);
    // The `before` INFO itself is in `after`: it is the bench's, not BullMQ's.
    if (commands.info) commands.info -= 1;
    if (!commands.info) delete commands.info;
  }
  await worker.close();
  const left = await queue.getJobCounts('wait', 'active', 'delayed', 'failed');
  await queue.obliterate({ force: true });
  await queue.close();
  return {
    wallSeconds: Number(stopped - started) / 1e9,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    completed,
    failed,
    duplicates,
    distinct: seen.size,
    left,
    commands,
  };
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    process.exit(64);
  }
  const connection = connectionFrom(process.env.REDIS_URL || 'redis://127.0.0.1:6379/');
  const { workload, workers, items: n, warmup, tag } = args;
  if (warmup > 0) {
    const warm = await pass({ workload, n: warmup, workers, connection });
    if (warm.completed !== warmup || warm.duplicates) throw new Error('the warm-up lost items');
  }
  const side = new IORedis(connection);
  const r = await pass({ workload, n, workers, connection, side, tag });
  await side.quit();
  const ok =
    r.completed === n &&
    r.failed === 0 &&
    r.duplicates === 0 &&
    r.distinct === n &&
    Object.values(r.left).every((count) => count === 0);
  const total = Object.values(r.commands).reduce((a, b) => a + b, 0);
  console.log(
    JSON.stringify({
      system: 'bullmq',
      bullmq_version: require('bullmq/package.json').version,
      node_version: process.version,
      workload,
      workers,
      items: n,
      warmup_items: warmup,
      ok,
      wall_seconds: r.wallSeconds,
      items_per_sec: n / r.wallSeconds,
      cpu_seconds: r.cpuSeconds,
      completed: r.completed,
      failed: r.failed,
      duplicates: r.duplicates,
      left: r.left,
      commands: r.commands,
      commands_per_item: total / n,
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    }),
  );
  process.exit(ok ? 0 : 2);
}

main().catch((e) => {
  console.error(e && e.message ? e.message : e);
  process.exit(1);
});
