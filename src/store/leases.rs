//! Named leases: "one replica at a time does X", with expiry so a dead
//! replica's work is taken over within the lease time.

use super::{Result, Store};
use crate::on_db;

impl Store {
    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`.
    /// True when `holder` holds it afterwards.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let sql = "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3) \
                   ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
                   WHERE leases.holder = excluded.holder OR leases.expires_ms < $4";
        let done = on_db!(self.db(), pool => sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .bind(now_ms + ttl_ms)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Gives the lease up early (on shutdown) so another replica need not wait.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_db!(self.db(), pool => sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
