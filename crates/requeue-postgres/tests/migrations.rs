//! The embedded migrations on a real server: applied once, in the named
//! schema, serialized between concurrent callers, and refused when the
//! database disagrees with the build.
#![allow(clippy::unwrap_used)]

mod support;

use requeue_postgres::Error;
use requeue_postgres::schema::{MIGRATIONS, applied_versions, migrate};
use support::{connect, fresh_schema};

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn migrate_applies_everything_once_into_the_named_schema() {
    let schema = fresh_schema("once");
    let mut conn = connect().await;
    assert!(
        applied_versions(&mut conn, &schema)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(migrate(&mut conn, &schema).await.unwrap(), all_versions());
    assert_eq!(
        migrate(&mut conn, &schema).await.unwrap(),
        Vec::<i32>::new()
    );
    assert_eq!(
        applied_versions(&mut conn, &schema).await.unwrap(),
        all_versions()
    );

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    )
    .bind(schema.as_str())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "items",
            "limiters",
            "queues",
            "renewals",
            "requeue_migrations",
            "stats"
        ]
    );
    // The anti-bloat storage parameters are in place.
    let options: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(c.reloptions) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = 'items'",
    )
    .bind(schema.as_str())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(options.contains(&"fillfactor=70".to_owned()), "{options:?}");
    assert!(
        options.contains(&"autovacuum_vacuum_scale_factor=0".to_owned()),
        "{options:?}"
    );
}

#[tokio::test]
async fn schemas_are_independent() {
    let (a, b) = (fresh_schema("indep"), fresh_schema("indep"));
    let mut conn = connect().await;
    migrate(&mut conn, &a).await.unwrap();
    assert!(applied_versions(&mut conn, &b).await.unwrap().is_empty());
    assert_eq!(migrate(&mut conn, &b).await.unwrap(), all_versions());
}

#[tokio::test]
async fn concurrent_callers_apply_it_exactly_once() {
    let schema = fresh_schema("race");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect().await;
            migrate(&mut conn, &schema).await.unwrap()
        }));
    }
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.unwrap());
    }
    assert_eq!(applied, all_versions(), "one caller applied each version");
}

#[tokio::test]
async fn a_newer_database_is_refused() {
    let schema = fresh_schema("newer");
    let mut conn = connect().await;
    migrate(&mut conn, &schema).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO {}.requeue_migrations (version, name, checksum) VALUES (9999, 'future', 0)",
        schema.quoted()
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let error = migrate(&mut conn, &schema).await.unwrap_err();
    assert!(
        matches!(error, Error::SchemaTooNew { found: 9999, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    let schema = fresh_schema("edited");
    let mut conn = connect().await;
    migrate(&mut conn, &schema).await.unwrap();
    sqlx::query(&format!(
        "UPDATE {}.requeue_migrations SET checksum = checksum # 1 WHERE version = 1",
        schema.quoted()
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let error = migrate(&mut conn, &schema).await.unwrap_err();
    assert!(
        matches!(error, Error::MigrationChanged { version: 1, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn the_table_enforces_the_state_rules() {
    let schema = fresh_schema("rules");
    let mut conn = connect().await;
    migrate(&mut conn, &schema).await.unwrap();
    let items = format!("{}.items", schema.quoted());
    let insert = |values: &str| {
        format!(
            "INSERT INTO {items} (queue_id, key, state, dirty, seq, due_us, lease_us, token, \
             nonce, failures, added_us) VALUES {values}"
        )
    };
    // One valid row per state (parked = processing and dirty).
    for row in [
        "(1, 'q', 'q', true, 1, NULL, NULL, NULL, NULL, 0, 10)",
        "(1, 'p', 'p', false, NULL, NULL, 100, 2, 7, 0, NULL)",
        "(1, 'parked', 'p', true, NULL, NULL, 100, 3, 7, 0, 10)",
        "(1, 'p+d', 'p', false, NULL, 50, 100, 4, 7, 0, NULL)", // held and delayed
        "(1, 'd', 'd', false, NULL, 50, NULL, NULL, NULL, 0, NULL)",
        "(1, 'i', 'i', false, NULL, NULL, NULL, NULL, NULL, 2, NULL)",
    ] {
        sqlx::query(&insert(row)).execute(&mut conn).await.unwrap();
    }
    // Each breaks one rule.
    for row in [
        "(1, 'x1', 'q', false, 1, NULL, NULL, NULL, NULL, 0, NULL)", // queued, not dirty
        "(1, 'x2', 'q', true, NULL, NULL, NULL, NULL, NULL, 0, 10)", // queued, no position
        "(1, 'x3', 'p', false, NULL, NULL, 100, NULL, NULL, 0, NULL)", // lease without token
        "(1, 'x4', 'd', true, NULL, 50, NULL, NULL, NULL, 0, 10)",   // delayed and dirty
        "(1, 'x5', 'i', false, NULL, NULL, NULL, NULL, NULL, 0, NULL)", // idle, nothing to keep
        "(1, 'x6', 'q', true, 1, NULL, NULL, NULL, NULL, 0, NULL)",  // dirty, no add time
        "(1, 'x7', 'z', false, NULL, NULL, NULL, NULL, NULL, 1, NULL)", // unknown state
        "(1, 'x8', 'i', false, NULL, NULL, NULL, NULL, NULL, -1, NULL)", // negative failures
        "(1, 'x10', 'p', true, NULL, 50, 100, 4, 7, 0, 10)",         // parked and delayed
        "(1, 'x9', 'p', false, NULL, NULL, 100, 4, NULL, 0, NULL)",  // token without nonce
    ] {
        let error = sqlx::query(&insert(row))
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("check constraint"),
            "{row}: {error}"
        );
    }
}
