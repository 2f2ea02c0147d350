// Shared by the PostgreSQL peers' drivers (graphile-worker/bench.js and
// pg-boss/bench.js require it as `../pgcount`): argument parsing, the
// client-side statement counter and the server-side counters. Packages
// are resolved from the running driver's directory (its node_modules),
// not from this file's, which has none.
'use strict';

const path = require('path');
const fromDriver = (pkg) => require.resolve(pkg, { paths: [require.main.path] });
const pg = require(fromDriver('pg'));

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

// Client-side count: every `Client.prototype.query` call the queue's own
// connections make while `counting` is on (one protocol round trip each:
// a simple query, or Parse/Bind/Execute/Sync of one statement). The bench's
// side connections are marked and not counted. `onQuery(config, values,
// promise-of-result)` sees each counted query, to spot completions.
const stats = { counting: false, statements: 0, windowed: false, windowStatements: 0 };
let onQuery = null;
const original = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, values, callback) {
  if (this.__requeueSide) return original.apply(this, arguments);
  if (stats.windowed) stats.windowStatements++;
  if (!stats.counting) return original.apply(this, arguments);
  stats.statements++;
  const seen = onQuery;
  if (!seen) return original.apply(this, arguments);
  const text = typeof config === 'string' ? config : config && config.text;
  const vals = typeof config === 'object' && config && config.values ? config.values : values;
  const args = Array.from(arguments);
  const last = args[args.length - 1];
  if (typeof last === 'function') {
    args[args.length - 1] = (err, res) => {
      if (!err) seen(text, vals, res);
      last(err, res);
    };
    return original.apply(this, args);
  }
  if (config && typeof config.callback === 'function') {
    const cb = config.callback;
    config.callback = (err, res) => {
      if (!err) seen(text, vals, res);
      cb(err, res);
    };
    return original.apply(this, args);
  }
  const result = original.apply(this, args);
  if (result && typeof result.then === 'function') {
    result.then((res) => seen(text, vals, res), () => {});
  }
  return result;
};

function setOnQuery(fn) {
  onQuery = fn;
}

async function side(url, fn) {
  const client = new pg.Client({ connectionString: url });
  client.__requeueSide = true;
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

// Server-side counters of this database, from pg_stat_database (and the
// sum of pg_stat_statements' calls when that extension is installed in the
// database; null otherwise). Read on a fresh side connection.
async function readCounters(url) {
  return side(url, async (c) => {
    const { rows } = await c.query(
      `SELECT xact_commit::bigint + xact_rollback::bigint AS xacts, xact_rollback::bigint AS rollbacks,
              tup_inserted::bigint AS inserted, tup_updated::bigint AS updated,
              tup_deleted::bigint AS deleted, tup_returned::bigint AS returned,
              tup_fetched::bigint AS fetched
         FROM pg_stat_database WHERE datname = current_database()`,
    );
    const out = {};
    for (const [k, v] of Object.entries(rows[0])) out[k] = Number(v);
    // pg_stat_statements, when the extension is installed in this database
    // (it needs shared_preload_libraries): top-level statements executed
    // (what clients sent) and all (with those run inside functions and
    // triggers when pg_stat_statements.track = all). Null otherwise.
    out.pgss_top = null;
    out.pgss_all = null;
    try {
      const r = await c.query(
        `SELECT coalesce(sum(s.calls) FILTER (WHERE s.toplevel), 0)::bigint AS top,
                coalesce(sum(s.calls), 0)::bigint AS all
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database()`,
      );
      out.pgss_top = Number(r.rows[0].top);
      out.pgss_all = Number(r.rows[0].all);
    } catch (e) {
      // Not installed (or not loaded): left null.
    }
    return out;
  });
}

// Waits (up to 10 s) until no other client backend is connected to this
// database, so that every backend that did the work has exited and so has
// flushed its statistics (PostgreSQL 15 flushes a backend's counters at
// most once a second while busy, up to 10 s late while idle, and always on
// exit).
async function waitNoOtherBackends(url) {
  return side(url, async (c) => {
    const deadline = Date.now() + 10000;
    for (;;) {
      const { rows } = await c.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND backend_type = 'client backend'`,
      );
      if (rows[0].n === 0) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  });
}

function minus(after, before) {
  const out = {};
  for (const k of Object.keys(after)) {
    out[k] = after[k] === null || before[k] === null ? null : after[k] - before[k];
  }
  return out;
}

// The counters the framing itself adds (its own connections, reads and
// polls), measured with nothing in between.
async function framingOverhead(url) {
  await waitNoOtherBackends(url);
  const a = await readCounters(url);
  await waitNoOtherBackends(url);
  const b = await readCounters(url);
  return minus(b, a);
}

// The installed version of `pkg`, read from its package.json (which its
// `exports` may not expose to require).
function versionOf(pkg) {
  const fs = require('fs');
  let dir = path.dirname(fromDriver(pkg));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (json.name === pkg) return json.version;
    }
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

function perItem(delta, n) {
  const out = {};
  for (const [k, v] of Object.entries(delta)) out[k] = v === null ? null : v / n;
  return out;
}

module.exports = {
  keyOf, shares, parseArgs, stats, setOnQuery, side, readCounters,
  waitNoOtherBackends, minus, framingOverhead, perItem, versionOf,
};
