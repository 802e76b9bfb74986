-- Triage (issue 18): what an alert's triage section and its localisation
-- read from the records besides what 0001 stores. `max_tokens` is the
-- request's output budget (`gen_ai.request.max_tokens`), so "outputs near
-- the budget" can be told; `labels` is the application's own dimensions
-- (`route`, `query_type`, ...) as a JSON object of at most 16 short
-- strings, validated on the way in.

ALTER TABLE responses ADD COLUMN max_tokens BIGINT;
ALTER TABLE responses ADD COLUMN labels TEXT;
