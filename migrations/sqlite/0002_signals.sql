-- Judge scores and the roll-ups the detectors read. Roll-ups are maintained
-- as data arrives, so detector cost depends on hours and streams, not on
-- traffic. Length bins are 25 tokens wide; bin 63 holds everything longer.

CREATE TABLE judge_scores (
    id             INTEGER PRIMARY KEY,
    response_id    INTEGER REFERENCES responses (id) ON DELETE SET NULL,
    canary_result_id INTEGER REFERENCES canary_results (id) ON DELETE SET NULL,
    stream         TEXT    NOT NULL,              -- stream, or "suite:<name>" for canary cases
    ts_ms          INTEGER NOT NULL,              -- time of the judged response
    judge          TEXT    NOT NULL,
    judge_version  INTEGER NOT NULL,
    judge_model    TEXT,
    score          REAL,                          -- NULL when the judge failed
    reasoning      TEXT,
    error          TEXT,                          -- judge or provider error, never a score
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    cost_usd       REAL,
    source         TEXT    NOT NULL,              -- judge | precomputed | canary
    created_ms     INTEGER NOT NULL
);
CREATE INDEX judge_scores_stream ON judge_scores (stream, judge, ts_ms);
CREATE UNIQUE INDEX judge_scores_once ON judge_scores (response_id, judge) WHERE response_id IS NOT NULL;

-- Per stream and hour: counts and output-length moments.
CREATE TABLE rollup_hourly (
    stream          TEXT    NOT NULL,
    hour_ms         INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    refusals        INTEGER NOT NULL,
    truncations     INTEGER NOT NULL,              -- finish_reason = length
    tokens_sum      REAL    NOT NULL,
    tokens_sumsq    REAL    NOT NULL,
    PRIMARY KEY (stream, hour_ms)
);

-- Per stream, hour and 25-token bin: the output-length histogram.
CREATE TABLE rollup_length (
    stream   TEXT    NOT NULL,
    hour_ms  INTEGER NOT NULL,
    bin      INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (stream, hour_ms, bin)
);

-- Per stream, judge and hour: score moments (Welch's t needs no more).
CREATE TABLE rollup_scores (
    stream   TEXT    NOT NULL,
    judge    TEXT    NOT NULL,
    hour_ms  INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    sum      REAL    NOT NULL,
    sumsq    REAL    NOT NULL,
    PRIMARY KEY (stream, judge, hour_ms)
);

-- Embedding sums per stream and hour. Insert-only partial sums (one row per
-- write batch) so concurrent writers never contend; readers add them up.
CREATE TABLE rollup_embedding (
    id       INTEGER PRIMARY KEY,
    stream   TEXT    NOT NULL,
    hour_ms  INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    dims     INTEGER NOT NULL,
    sum      BLOB    NOT NULL                      -- little-endian f64 x dims
);
CREATE INDEX rollup_embedding_stream ON rollup_embedding (stream, hour_ms);
