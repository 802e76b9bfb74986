-- Detectors: indexes so an evaluation reads only the hours it needs across
-- all streams, the health-score time series, and the latest verdict per
-- (stream, rule, dimension) for `canaryd status`.

CREATE INDEX rollup_hourly_hour ON rollup_hourly (hour_ms);
CREATE INDEX rollup_length_hour ON rollup_length (hour_ms);
CREATE INDEX rollup_scores_hour ON rollup_scores (hour_ms);
CREATE INDEX rollup_embedding_hour ON rollup_embedding (hour_ms);
CREATE INDEX canary_results_created ON canary_results (created_ms);

CREATE TABLE health_scores (
    stream   TEXT    NOT NULL,                 -- stream, or "suite:<name>"
    at_ms    INTEGER NOT NULL,
    score    REAL    NOT NULL,                 -- 0..100
    PRIMARY KEY (stream, at_ms)
);

CREATE TABLE signal_snapshots (
    stream    TEXT    NOT NULL,
    rule      TEXT    NOT NULL,
    dimension TEXT    NOT NULL DEFAULT '',     -- '' when the rule has none
    at_ms     INTEGER NOT NULL,
    status    TEXT    NOT NULL,                -- firing | ok | insufficient_data
    severity  TEXT    NOT NULL,
    finding   TEXT    NOT NULL,                -- the Finding as JSON
    PRIMARY KEY (stream, rule, dimension)
);
