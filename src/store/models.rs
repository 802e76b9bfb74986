//! Which model actually answered: the last identity per scope, and the
//! events recorded when it changes.

use serde::Serialize;

use super::BeginWrite;
use super::{Result, Store};
use crate::on_db;

/// What a provider reported about itself for one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelIdentity {
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
}

pub use crate::signals::model_change::ModelEvent;

/// A `model_events` row; the detectors' `ModelEvent` stays free of sqlx.
#[derive(sqlx::FromRow)]
pub(super) struct ModelEventRow {
    id: i64,
    at_ms: i64,
    scope: String,
    requested_model: String,
    old_model: Option<String>,
    new_model: Option<String>,
    old_fingerprint: Option<String>,
    new_fingerprint: Option<String>,
}

impl From<ModelEventRow> for ModelEvent {
    fn from(r: ModelEventRow) -> Self {
        ModelEvent {
            id: r.id,
            at_ms: r.at_ms,
            scope: r.scope,
            requested_model: r.requested_model,
            old_model: r.old_model,
            new_model: r.new_model,
            old_fingerprint: r.old_fingerprint,
            new_fingerprint: r.new_fingerprint,
        }
    }
}

/// Rows as events, for the other store files' queries.
pub(super) fn events(rows: Vec<ModelEventRow>) -> Vec<ModelEvent> {
    rows.into_iter().map(ModelEvent::from).collect()
}

impl Store {
    /// Records that `identity` answered for `requested_model` in `scope` at
    /// `at_ms`. Returns the model-change event when it differs from the last
    /// identity seen (the first sighting is not a change). A missing
    /// fingerprint (many non-OpenAI servers send none) is not a change.
    pub async fn observe_model(
        &self,
        scope: &str,
        requested_model: &str,
        identity: &ModelIdentity,
        at_ms: i64,
    ) -> Result<Option<ModelEvent>> {
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let prev: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT response_model, system_fingerprint FROM model_identity WHERE scope = $1 AND requested_model = $2",
            )
            .bind(scope)
            .bind(requested_model)
            .fetch_optional(&mut *tx)
            .await?;
            let changed = match &prev {
                None => false,
                Some((model, fp)) => {
                    (identity.response_model.is_some() && *model != identity.response_model)
                        || (identity.system_fingerprint.is_some()
                            && fp.is_some()
                            && *fp != identity.system_fingerprint)
                }
            };
            sqlx::query(
                "INSERT INTO model_identity (scope, requested_model, response_model, system_fingerprint, seen_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, requested_model) DO UPDATE SET \
                 response_model = COALESCE(excluded.response_model, model_identity.response_model), \
                 system_fingerprint = COALESCE(excluded.system_fingerprint, model_identity.system_fingerprint), \
                 seen_ms = excluded.seen_ms",
            )
            .bind(scope)
            .bind(requested_model)
            .bind(&identity.response_model)
            .bind(&identity.system_fingerprint)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
            let event = if changed {
                let (old_model, old_fp) = prev.unwrap_or_default();
                let id: (i64,) = sqlx::query_as(
                    "INSERT INTO model_events (at_ms, scope, requested_model, old_model, new_model, old_fingerprint, new_fingerprint) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(at_ms)
                .bind(scope)
                .bind(requested_model)
                .bind(&old_model)
                .bind(&identity.response_model)
                .bind(&old_fp)
                .bind(&identity.system_fingerprint)
                .fetch_one(&mut *tx)
                .await?;
                // The change also becomes a change annotation (source
                // `auto`), in the same transaction, so the timeline of
                // recorded changes is complete without anyone typing it.
                let text = crate::annotations::model_change_text(
                    requested_model,
                    old_model.as_deref().or(old_fp.as_deref()),
                    identity
                        .response_model
                        .as_deref()
                        .or(identity.system_fingerprint.as_deref()),
                );
                sqlx::query(
                    "INSERT INTO annotations (stream, kind, text, ts_ms, source, created_ms) \
                     VALUES ($1, 'model', $2, $3, 'auto', $3)",
                )
                .bind(crate::annotations::stream_of_scope(scope))
                .bind(text)
                .bind(at_ms)
                .execute(&mut *tx)
                .await?;
                Some(ModelEvent {
                    id: id.0,
                    at_ms,
                    scope: scope.to_string(),
                    requested_model: requested_model.to_string(),
                    old_model,
                    new_model: identity.response_model.clone(),
                    old_fingerprint: old_fp,
                    new_fingerprint: identity.system_fingerprint.clone(),
                })
            } else {
                None
            };
            tx.commit().await?;
            Ok(event)
        })
    }

    /// Model-change events for scopes starting with `scope_prefix`, since `since_ms`.
    pub async fn model_events(&self, scope_prefix: &str, since_ms: i64) -> Result<Vec<ModelEvent>> {
        let pattern = format!("{}%", scope_prefix.replace('%', "\\%").replace('_', "\\_"));
        let rows = on_db!(self.db(), pool => sqlx::query_as::<_, ModelEventRow>(
            "SELECT id, at_ms, scope, requested_model, old_model, new_model, old_fingerprint, new_fingerprint \
             FROM model_events WHERE scope LIKE $1 ESCAPE '\\' AND at_ms >= $2 ORDER BY at_ms, id",
        )
        .bind(pattern)
        .bind(since_ms)
        .fetch_all(pool)
        .await)?;
        Ok(events(rows))
    }
}
