//! The two migration trees (`migrations/sqlite`, `migrations/postgres`)
//! must give the same schema: the same tables, each with the same columns,
//! and the same named indexes on the same tables. Types differ by dialect
//! and are not compared; the implicit indexes of primary keys and UNIQUE
//! constraints are named differently by each engine and are left out.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use canaryd::store::{Db, Store};

use crate::support::TestDb;

/// Table → columns, and index → table.
#[derive(Debug, PartialEq)]
struct Schema {
    tables: BTreeMap<String, BTreeSet<String>>,
    indexes: BTreeMap<String, String>,
}

async fn schema(store: &Store) -> Schema {
    let mut tables = BTreeMap::new();
    let indexes: Vec<(String, String)>;
    match store.db() {
        Db::Sqlite(pool) => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            for t in names {
                let cols: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&t)
                        .fetch_all(pool)
                        .await
                        .unwrap();
                tables.insert(t, cols.into_iter().collect());
            }
            indexes = sqlx::query_as(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' \
                 AND name NOT LIKE 'sqlite_autoindex%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
        }
        Db::Postgres(pool) => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
                 AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            for t in names {
                let cols: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1",
                )
                .bind(&t)
                .fetch_all(pool)
                .await
                .unwrap();
                tables.insert(t, cols.into_iter().collect());
            }
            // Indexes that back a constraint (primary key, UNIQUE) are the
            // engine's own, as SQLite's autoindexes are.
            indexes = sqlx::query_as(
                "SELECT i.indexname::text, i.tablename::text FROM pg_indexes i \
                 WHERE i.schemaname = 'public' AND i.tablename NOT LIKE '_sqlx%' \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            )
            .fetch_all(pool)
            .await
            .unwrap();
        }
    }
    Schema {
        tables,
        indexes: indexes.into_iter().collect(),
    }
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_give_the_same_schema() {
    let dbs = TestDb::all().await;
    let mut schemas = Vec::new();
    for db in &dbs {
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        schemas.push((db.backend, schema(&store).await));
        store.close().await;
    }
    let (_, sqlite) = &schemas[0];
    assert!(
        sqlite.tables.len() >= 20 && sqlite.tables.contains_key("responses"),
        "{:?}",
        sqlite.tables.keys()
    );
    assert!(sqlite.indexes.len() >= 10, "{:?}", sqlite.indexes);
    let Some((_, pg)) = schemas.get(1) else {
        return; // PostgreSQL unreachable and not required: reported by TestDb.
    };
    let names = |s: &Schema| s.tables.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(names(sqlite), names(pg), "tables (sqlite, postgres)");
    for (t, cols) in &sqlite.tables {
        assert_eq!(cols, &pg.tables[t], "columns of {t} (sqlite, postgres)");
    }
    assert_eq!(sqlite.indexes, pg.indexes, "indexes (sqlite, postgres)");
}
