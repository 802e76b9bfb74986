-- Issue 18, points 3 and 4.
-- Judge canaries (anchors) record which pair they scored and what it should
-- have scored, so `judge_drift` can tell a change of the judge itself.
ALTER TABLE judge_scores ADD COLUMN canary_pair INTEGER;          -- index in the judge file
ALTER TABLE judge_scores ADD COLUMN canary_expected REAL;
ALTER TABLE judge_scores ADD COLUMN canary_tolerance REAL;

-- Prompt versions seen in traffic, once per (stream, version): a new one
-- becomes a change annotation (source `auto`, kind `prompt`).
CREATE TABLE prompt_versions (
    stream       TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    first_ts_ms  INTEGER NOT NULL,            -- record time of the first record seen with it
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (stream, version)
);
