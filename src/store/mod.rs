//! Storage on SQLite (embedded default) or PostgreSQL (production, several
//! replicas), behind one interface.
//!
//! `Store` holds one of two pools. Most SQL is shared text — SQLite accepts
//! `$1` placeholders — and the [`on_db!`] macro expands one body for each
//! backend, so the compiler checks both and the two implementations cannot
//! drift apart. Where dialects differ the body matches on [`Db`] itself.

mod alerts;
mod annotations;
mod canary;
mod equality;
mod evidence;
mod incident;
mod judge;
mod leases;
pub mod log_events;
mod logprobs;
mod models;
pub mod nodelay;
mod pages;
mod responses;
mod retention;
pub mod rollups;
mod session_writes;
pub mod sessions;
mod signals;
mod spend;
mod triage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use alerts::*;
pub use annotations::Annotation;
pub use canary::*;
pub use equality::{MAX_HISTORY_ROWS, NewEqualityTest, NewSample};
pub use evidence::{ExampleResponse, FailedCase, JudgedExample, ResponsePick};
pub use incident::EvidencePick;
pub use judge::*;
pub use logprobs::{ProbeRow, SuiteSpend};
pub use models::*;
pub use pages::*;
pub use responses::*;
pub use retention::{AlertCutoffs, BATCH as RETENTION_BATCH, Swept};
pub use rollups::{embedding_bytes, embedding_from_bytes};
pub use spend::{SpendHour, SpendTotal, StreamSpend, UserSpend};
pub use triage::{FiredSession, TriageData, TriageQuery, TriageRow};

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`:
/// a deferred transaction that reads before it writes cannot wait for the
/// write lock (SQLite answers "database is locked" at once, ignoring
/// `busy_timeout`), so every write transaction takes the lock up front and
/// concurrent writers queue instead of failing.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = std::result::Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>,
    > + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = std::result::Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>,
    > + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>,
    > + Send {
        self.begin()
    }
}

/// The backend pool.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which backend a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Storage failures. Messages name the database without its password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    Unsupported(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The one storage interface. Cheap to clone (it is a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Opens the database named by `url`, creating a SQLite file if needed.
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store> {
        let redacted = crate::secret::redact_url(url);
        let connect_err = |source| StoreError::Connect {
            url: redacted.clone(),
            source,
        };
        let db = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(connect_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(connect_err)?;
            Db::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(connect_err)?;
            let pool = PgPoolOptions::new()
                .after_connect(|_, _| {
                    Box::pin(async {
                        nodelay::set_on_tcp_sockets();
                        Ok(())
                    })
                })
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(connect_err)?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::Unsupported(redacted));
        };
        Ok(Store { db })
    }

    /// Applies the embedded migrations; applying them again is a no-op.
    /// Replicas starting together are safe: sqlx takes an advisory lock on PostgreSQL.
    pub async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The pool, for modules that need backend-specific SQL.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        on_db!(&self.db, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Names of the tables the migrations created (for `canaryd migrate` and tests).
    pub async fn tables(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
                )
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE '_sqlx%' ORDER BY tablename",
                )
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn close(&self) {
        on_db!(&self.db, pool => pool.close().await)
    }
}
