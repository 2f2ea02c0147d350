//! Adds inside the caller's transaction (`PostgresQueue::add_in`): the
//! add commits or rolls back together with the caller's own writes.

use super::PostgresQueue;
use super::shared::micros;
use requeue::engine::{AddError, QueueError};
use requeue::limiter::LimiterSpec;
use requeue::queue::{AddOpts, Added, Key};
use sqlx::PgConnection;
use std::time::Duration;

/// The limiter's parameters as `add_rate_limited`'s arguments (µs; NULL
/// for a limiter that is not configured).
pub(crate) struct LimiterArgs {
    pub(crate) base_us: Option<i64>,
    pub(crate) max_us: Option<i64>,
    pub(crate) fast_us: Option<i64>,
    pub(crate) slow_us: Option<i64>,
    pub(crate) max_fast: Option<i32>,
    pub(crate) rate: Option<f64>,
    pub(crate) burst: Option<f64>,
}

impl LimiterArgs {
    pub(crate) fn of(spec: &LimiterSpec) -> Self {
        let ms = |ms: u64| micros(Duration::from_millis(ms));
        LimiterArgs {
            base_us: spec.exponential.map(|e| ms(e.base_ms)),
            max_us: spec.exponential.map(|e| ms(e.max_ms)),
            fast_us: spec.fast_slow.map(|f| ms(f.fast_ms)),
            slow_us: spec.fast_slow.map(|f| ms(f.slow_ms)),
            max_fast: spec
                .fast_slow
                .map(|f| i32::try_from(f.max_fast).unwrap_or(i32::MAX)),
            rate: spec.bucket.map(|b| b.qps),
            burst: spec.bucket.map(|b| f64::from(b.burst)),
        }
    }
}

/// A priority as the table's smallint (clamped).
pub(crate) fn priority_of(opts: &AddOpts) -> i16 {
    i16::try_from(
        opts.priority
            .clamp(i32::from(i16::MIN), i32::from(i16::MAX)),
    )
    .unwrap_or(0)
}

impl<T: Key> PostgresQueue<T> {
    /// Adds `item` now, inside the caller's transaction: workers see it
    /// only once that transaction commits, and never if it rolls back.
    /// See [`add_in_with`](PostgresQueue::add_in_with).
    pub async fn add_in(&self, conn: &mut PgConnection, item: T) -> Result<Added, AddError<T>> {
        self.add_in_with(conn, item, AddOpts::new()).await
    }

    /// Adds `item` as `opts` say (delayed, rate-limited, with a priority)
    /// on `conn`, the caller's connection — typically a
    /// `sqlx::Transaction<'_, Postgres>` the caller opened, passed as
    /// `&mut tx` (it dereferences to `PgConnection`). The add is then part
    /// of that transaction: it commits or rolls back with the caller's own
    /// writes, and the wake-up of idle workers (a `NOTIFY`) is delivered
    /// only at commit.
    ///
    /// The statement runs on the caller's connection and runtime, not the
    /// queue's. It promotes no due items (promotion inside a long
    /// transaction would hold those rows' locks until it ends), and it
    /// locks the key's row until the transaction ends: a worker's `done`
    /// of the same key waits for that commit. A rate-limited add also
    /// holds the queue's token-bucket row, if the limiter has a bucket,
    /// serializing other rate-limited adds of the queue behind the
    /// transaction: keep such transactions short.
    ///
    /// Refused (nothing written) when this process is shutting down, and
    /// for a key whose encoding is not text PostgreSQL can store.
    pub async fn add_in_with(
        &self,
        conn: &mut PgConnection,
        item: T,
        opts: AddOpts,
    ) -> Result<Added, AddError<T>> {
        match self.add_in_inner(conn, &item, opts).await {
            Ok(added) => Ok(added),
            Err(error) => Err(AddError { item, error }),
        }
    }

    async fn add_in_inner(
        &self,
        conn: &mut PgConnection,
        item: &T,
        opts: AddOpts,
    ) -> Result<Added, QueueError> {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return Err(QueueError::ShutDown);
        }
        let key = shared.key_text(item)?;
        let priority = priority_of(&opts);
        let now = shared.now();
        let (code, delay) = if opts.rate_limited {
            shared.report(|m| m.retries.inc());
            let args = LimiterArgs::of(&shared.limiter);
            let result = sqlx::query_as::<_, (i16, i64)>(&shared.sql.add_rate_limited)
                .bind(shared.queue_id)
                .bind(&key)
                .bind(now)
                .bind(args.base_us)
                .bind(args.max_us)
                .bind(args.fast_us)
                .bind(args.slow_us)
                .bind(args.max_fast)
                .bind(args.rate)
                .bind(args.burst)
                .bind(priority)
                .bind(0_i32)
                .fetch_one(&mut *conn)
                .await;
            let (code, delay_us) = shared.outcome(result)?;
            let limiter = Duration::from_micros(u64::try_from(delay_us).unwrap_or(0));
            // The shorter of the two delays wins (`AddOpts::delay`): a
            // shorter `after` is added on top (the earliest delay wins).
            match opts.delay(Some(limiter)).filter(|d| *d < limiter) {
                Some(shorter) => (
                    add_after_on(self, conn, &key, shorter, priority).await?,
                    shorter,
                ),
                None => (i32::from(code), limiter),
            }
        } else {
            let delay = opts.delay(None).unwrap_or(Duration::ZERO);
            (
                add_after_on(self, conn, &key, delay, priority).await?,
                delay,
            )
        };
        Ok(shared.added(code, delay))
    }
}

/// `add_after` (an immediate add for a zero delay) on the caller's connection.
async fn add_after_on<T: Key>(
    queue: &PostgresQueue<T>,
    conn: &mut PgConnection,
    key: &str,
    delay: Duration,
    priority: i16,
) -> Result<i32, QueueError> {
    let shared = &queue.shared;
    let result = sqlx::query_scalar::<_, i16>(&shared.sql.add_after)
        .bind(shared.queue_id)
        .bind(key)
        .bind(micros(delay))
        .bind(shared.now())
        .bind(priority)
        .bind(0_i32)
        .fetch_one(&mut *conn)
        .await;
    shared.outcome(result).map(i32::from)
}
