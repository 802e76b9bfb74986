-- Issue 18, points 3 and 4 (PostgreSQL twin of migrations/sqlite).
-- Judge canaries (anchors) record which pair they scored and what it should
-- have scored, so `judge_drift` can tell a change of the judge itself.
ALTER TABLE judge_scores ADD COLUMN canary_pair BIGINT;           -- index in the judge file
ALTER TABLE judge_scores ADD COLUMN canary_expected DOUBLE PRECISION;
ALTER TABLE judge_scores ADD COLUMN canary_tolerance DOUBLE PRECISION;

-- Prompt versions seen in traffic, once per (stream, version): a new one
-- becomes a change annotation (source `auto`, kind `prompt`).
CREATE TABLE prompt_versions (
    stream       TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    first_ts_ms  BIGINT  NOT NULL,            -- record time of the first record seen with it
    created_ms   BIGINT  NOT NULL,
    PRIMARY KEY (stream, version)
);
