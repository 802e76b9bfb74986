-- Issue 15: the `gen_ai.evaluation.explanation` of an OTLP evaluation event
-- waits with its score until the span's record arrives (then it becomes the
-- precomputed score's `judge_scores.reasoning`). JSON object judge -> text,
-- or NULL when no evaluation carried one.
ALTER TABLE otlp_log_events ADD COLUMN explanations TEXT;
