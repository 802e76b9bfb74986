//! GenAI events from OTLP logs, joined to their span's record by id
//! (`otel:<trace>:<span>`). A log may arrive after the span (its content
//! and scores are added to the stored record) or before it (it waits in
//! `otlp_log_events` until the span's record is ingested and takes it).

use std::collections::BTreeMap;

use super::BeginWrite;
use super::responses::{JobPlan, judged_by_sample};
use super::rollups::{BatchRollup, Signals, hour_of};
use super::{ResponseRow, Result, Store};
use crate::on_db;

/// The GenAI events of one span, read from log records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogEvents {
    /// Row id in `otlp_log_events` (0 until stored there).
    pub id: i64,
    pub ext_id: String,
    /// The record input as stored in `responses.input` (JSON).
    pub input: Option<String>,
    pub output: Option<String>,
    pub scores: BTreeMap<String, f64>,
    /// `gen_ai.evaluation.explanation` by judge: the score's reasoning.
    pub explanations: BTreeMap<String, String>,
    /// The cheap signals of `output` alone, computed where the classifier
    /// lives (ingest), for a stored record whose empty output this fills.
    pub output_signals: Option<Signals>,
    pub received_ms: i64,
}

/// What [`Store::attach_log_events`] did with each span's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOutcome {
    /// Joined to a stored record.
    pub attached: u64,
    /// Kept until their span arrives.
    pub pending: u64,
    /// Judge jobs enqueued for records whose output arrived with the events.
    pub jobs: u64,
}

/// How a record whose output arrives late is judged: as it would have
/// been had the output come with the span (at ingest a record with an
/// empty output gets no judge, so without this a stream whose content
/// arrives only as events after its spans would never be judged).
pub struct LateJudging<'a> {
    pub plan: &'a JobPlan<'a>,
    /// The judges that apply to a record, as the ingest handler decides
    /// them for a new one (the row carries its output, whether it has
    /// input and context, and its precomputed scores).
    pub judges: &'a (dyn Fn(&ResponseRow) -> Vec<String> + Send + Sync),
}

/// id, ext_id, input, output, scores (JSON), explanations (JSON), received_ms.
type PendingRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
);

/// The stored record an event joins: id, stream, ts_ms, output, refusal,
/// output_tokens, sampled, input, whether it has context.
type JoinedRow = (
    i64,
    String,
    i64,
    String,
    bool,
    i64,
    bool,
    Option<String>,
    bool,
);

impl Store {
    /// Joins each span's events to its stored record: content fills an
    /// empty input or output, each evaluation becomes a `precomputed` judge
    /// score (once per record and judge, its explanation the reasoning)
    /// with its roll-up. An output that fills an empty one recomputes the
    /// record's refusal flag and, where the span gave no usage, its token
    /// count, and moves the record in the hourly and length roll-ups, so
    /// the refusal and length detectors see what was answered rather than
    /// an empty answer. Events whose record is not stored are kept pending.
    ///
    /// With `judging`, a record whose output this fills is sampled for the
    /// judges that apply to it under the same hourly floor and cap as a
    /// new record.
    pub async fn attach_log_events(
        &self,
        events: &[LogEvents],
        judging: Option<&LateJudging<'_>>,
    ) -> Result<AttachOutcome> {
        let mut out = AttachOutcome::default();
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let mut roll = BatchRollup::default();
            for ev in events {
                let row: Option<JoinedRow> = sqlx::query_as(
                    "SELECT id, stream, ts_ms, output, refusal, output_tokens, sampled, input, context IS NOT NULL \
                     FROM responses WHERE ext_id = $1",
                )
                .bind(&ev.ext_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, stream, ts_ms, old_output, old_refusal, old_tokens, sampled, old_input, has_context)) =
                    row
                else {
                    sqlx::query(
                        "INSERT INTO otlp_log_events (ext_id, input, output, scores, explanations, received_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&ev.ext_id)
                    .bind(&ev.input)
                    .bind(&ev.output)
                    .bind(serde_json::to_string(&ev.scores).expect("numbers serialize"))
                    .bind(
                        (!ev.explanations.is_empty())
                            .then(|| serde_json::to_string(&ev.explanations).expect("strings serialize")),
                    )
                    .bind(ev.received_ms)
                    .execute(&mut *tx)
                    .await?;
                    out.pending += 1;
                    continue;
                };
                if let Some(input) = &ev.input {
                    sqlx::query("UPDATE responses SET input = $1 WHERE id = $2 AND input IS NULL")
                        .bind(input)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                for (judge, score) in &ev.scores {
                    let done = sqlx::query(
                        "INSERT INTO judge_scores (response_id, stream, ts_ms, judge, judge_version, score, reasoning, source, created_ms) \
                         VALUES ($1, $2, $3, $4, 0, $5, $6, 'precomputed', $7) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(&stream)
                    .bind(ts_ms)
                    .bind(judge)
                    .bind(*score)
                    .bind(ev.explanations.get(judge))
                    .bind(ev.received_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if done > 0 {
                        roll.add_score(&stream, judge, ts_ms, *score);
                    }
                }
                if let Some(output) = ev.output.as_ref().filter(|_| old_output.is_empty()) {
                    let signals = ev.output_signals.unwrap_or_default();
                    let old = Signals {
                        refusal: old_refusal,
                        tokens: old_tokens,
                    };
                    let new = old.with_output(signals);
                    let filled = sqlx::query(
                        "UPDATE responses SET output = $1, refusal = $2, output_tokens = $3 WHERE id = $4 AND output = ''",
                    )
                    .bind(output)
                    .bind(new.refusal)
                    .bind(new.tokens)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if filled > 0 {
                        roll.move_response(&stream, ts_ms, old, new);
                        if let Some(j) = judging {
                            let row = ResponseRow {
                                stream: stream.clone(),
                                ts_ms,
                                output: output.clone(),
                                input: old_input.or_else(|| ev.input.clone()),
                                context: has_context.then(String::new),
                                scores: sqlx::query_as(
                                    "SELECT judge, COALESCE(score, 0) FROM judge_scores WHERE response_id = $1",
                                )
                                .bind(id)
                                .fetch_all(&mut *tx)
                                .await?,
                                sampled,
                                ..Default::default()
                            };
                            let judges = (j.judges)(&row);
                            if !judges.is_empty() {
                                // The hourly counter of judged records, locked
                                // as the ingest path locks it.
                                let hour = hour_of(ts_ms);
                                let (n,): (i64,) = sqlx::query_as(
                                    "INSERT INTO judge_sample_hourly (stream, hour_ms, n) VALUES ($1, $2, 0) \
                                     ON CONFLICT (stream, hour_ms) DO UPDATE SET n = judge_sample_hourly.n RETURNING n",
                                )
                                .bind(&stream)
                                .bind(hour)
                                .fetch_one(&mut *tx)
                                .await?;
                                let (floor, cap) = (j.plan.floor_cap)(&stream);
                                let take = judged_by_sample(sampled, n, floor, cap);
                                if take {
                                    sqlx::query("UPDATE judge_sample_hourly SET n = n + 1 WHERE stream = $1 AND hour_ms = $2")
                                        .bind(&stream)
                                        .bind(hour)
                                        .execute(&mut *tx)
                                        .await?;
                                    for judge in &judges {
                                        out.jobs += sqlx::query(
                                            "INSERT INTO judge_jobs (response_id, judge, stream, ts_ms, status, attempts, not_before_ms, created_ms) \
                                             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
                                        )
                                        .bind(id)
                                        .bind(judge)
                                        .bind(&stream)
                                        .bind(ts_ms)
                                        .bind(j.plan.now_ms)
                                        .execute(&mut *tx)
                                        .await?
                                        .rows_affected();
                                    }
                                }
                                if take != sampled {
                                    sqlx::query("UPDATE responses SET sampled = $1 WHERE id = $2")
                                        .bind(take)
                                        .bind(id)
                                        .execute(&mut *tx)
                                        .await?;
                                }
                            }
                        }
                    }
                }
                out.attached += 1;
            }
            super::rollups::upsert_hourly_rollups!(&mut *tx, &roll.hourly);
            super::rollups::upsert_length_rollups!(&mut *tx, &roll.length);
            super::rollups::upsert_score_rollups!(&mut *tx, &roll.scores);
            tx.commit().await?;
        });
        Ok(out)
    }

    /// The pending events of these records, oldest first.
    pub async fn pending_log_events(&self, ext_ids: &[String]) -> Result<Vec<LogEvents>> {
        let mut out = Vec::new();
        for chunk in ext_ids.chunks(500) {
            let rows: Vec<PendingRow> = on_db!(self.db(), pool => {
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT id, ext_id, input, output, scores, explanations, received_ms FROM otlp_log_events WHERE ext_id IN (",
                );
                let mut sep = qb.separated(", ");
                for e in chunk {
                    sep.push_bind(e);
                }
                qb.push(") ORDER BY id");
                qb.build_query_as().fetch_all(pool).await?
            });
            out.extend(rows.into_iter().map(
                |(id, ext_id, input, output, scores, explanations, received_ms)| {
                    LogEvents {
                        id,
                        ext_id,
                        input,
                        output,
                        scores: serde_json::from_str(&scores).unwrap_or_default(),
                        explanations: explanations
                            .and_then(|e| serde_json::from_str(&e).ok())
                            .unwrap_or_default(),
                        // A pending output is given to its record
                        // before that record's signals are computed.
                        output_signals: None,
                        received_ms,
                    }
                },
            ));
        }
        Ok(out)
    }

    /// Removes pending events a stored record has taken. By row id: events
    /// that arrived while that record was being written stay.
    pub async fn delete_log_events(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(500) {
            on_db!(self.db(), pool => {
                let mut qb = sqlx::QueryBuilder::new("DELETE FROM otlp_log_events WHERE id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(pool).await?;
            });
        }
        Ok(())
    }
}
