//! Connection pool, transactions and migrations.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::StoreError;
use crate::error::{ApiError, ApiResult};

/// The migrations in `sql/`, applied in order, each once (tracked in `schema_migrations`).
const MIGRATIONS: &[(&str, &str)] = &[
    ("001_schema", include_str!("../../sql/001_schema.sql")),
    ("002_outbox", include_str!("../../sql/002_outbox.sql")),
    (
        "003_dead_letters",
        include_str!("../../sql/003_dead_letters.sql"),
    ),
    (
        "004_upload_jobs",
        include_str!("../../sql/004_upload_jobs.sql"),
    ),
    (
        "005_relay_lease",
        include_str!("../../sql/005_relay_lease.sql"),
    ),
];

/// A handle on the pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

/// A pooled client; start transactions on it with [`tokio_postgres::Client::transaction`].
pub type Client = deadpool_postgres::Object;
/// A transaction on a pooled client.
pub type Tx<'a> = deadpool_postgres::Transaction<'a>;

impl Db {
    pub fn connect(url: &str, size: usize) -> Result<Db, String> {
        let pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(size)
            .build()
            .map_err(|e| format!("database pool: {e}"))?;
        Ok(Db { pool })
    }

    pub async fn client(&self) -> ApiResult<Client> {
        Ok(self.pool.get().await?)
    }

    /// Like [`Db::client`], with the typed [`StoreError`] for callers that classify failures.
    pub async fn conn(&self) -> Result<Client, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Applies pending migrations under an advisory lock, so several instances starting at
    /// once do not race.
    pub async fn migrate(&self) -> Result<(), String> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| format!("database: {e}"))?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7262021);
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .map_err(|e| format!("migrations: {e}"))?;
        for (name, sql) in MIGRATIONS {
            let done = tx
                .query_opt("SELECT 1 FROM schema_migrations WHERE name = $1", &[name])
                .await
                .map_err(|e| e.to_string())?;
            if done.is_none() {
                tx.batch_execute(sql)
                    .await
                    .map_err(|e| format!("migration {name}: {e}"))?;
                tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name])
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!("applied migration {name}");
            }
        }
        tx.commit().await.map_err(|e| e.to_string())
    }

    /// The pool's size, idle connections and waiters (for the metrics scrape).
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// `SELECT 1` for the health endpoint.
    pub async fn ping(&self) -> ApiResult<()> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await.map_err(ApiError::from)?;
        Ok(())
    }
}

/// True when `e` is a unique-constraint violation (SQLSTATE 23505).
pub fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// True when `e` is a foreign-key violation (SQLSTATE 23503): a referenced row is gone.
pub fn is_foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
}
