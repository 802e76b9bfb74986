-- Canary runner additions (issue 4).

-- Token Jaccard similarity of this answer to the baseline (pinned) target's
-- answer for the same case in the same run; NULL for the baseline itself or
-- when either side has no answer.
ALTER TABLE canary_results ADD COLUMN similarity_to_pinned DOUBLE PRECISION;
-- Provider attempts made for this answer (1 = no retry).
ALTER TABLE canary_results ADD COLUMN attempts BIGINT;
-- ProviderError::kind() (rate_limited, timeout, ...) or judge/embedder for a
-- provider_error outcome.
ALTER TABLE canary_results ADD COLUMN error_kind TEXT;
-- Why a run ended as it did (e.g. "timed out after 300s").
ALTER TABLE canary_runs ADD COLUMN note TEXT;
