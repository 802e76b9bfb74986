-- Judge scores and the roll-ups the detectors read. Roll-ups are maintained
-- as data arrives, so detector cost depends on hours and streams, not on
-- traffic. Length bins are 25 tokens wide; bin 63 holds everything longer.

CREATE TABLE judge_scores (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    response_id    BIGINT  REFERENCES responses (id) ON DELETE SET NULL,
    canary_result_id BIGINT  REFERENCES canary_results (id) ON DELETE SET NULL,
    stream         TEXT    NOT NULL,              -- stream, or "suite:<name>" for canary cases
    ts_ms          BIGINT  NOT NULL,              -- time of the judged response
    judge          TEXT    NOT NULL,
    judge_version  BIGINT  NOT NULL,
    judge_model    TEXT,
    score          DOUBLE PRECISION,                          -- NULL when the judge failed
    reasoning      TEXT,
    error          TEXT,                          -- judge or provider error, never a score
    input_tokens   BIGINT,
    output_tokens  BIGINT,
    cost_usd       DOUBLE PRECISION,
    source         TEXT    NOT NULL,              -- judge | precomputed | canary
    created_ms     BIGINT  NOT NULL
);
CREATE INDEX judge_scores_stream ON judge_scores (stream, judge, ts_ms);
CREATE UNIQUE INDEX judge_scores_once ON judge_scores (response_id, judge) WHERE response_id IS NOT NULL;

-- Per stream and hour: counts and output-length moments.
CREATE TABLE rollup_hourly (
    stream          TEXT    NOT NULL,
    hour_ms         BIGINT  NOT NULL,
    n               BIGINT  NOT NULL,
    refusals        BIGINT  NOT NULL,
    truncations     BIGINT  NOT NULL,              -- finish_reason = length
    tokens_sum      DOUBLE PRECISION    NOT NULL,
    tokens_sumsq    DOUBLE PRECISION    NOT NULL,
    PRIMARY KEY (stream, hour_ms)
);

-- Per stream, hour and 25-token bin: the output-length histogram.
CREATE TABLE rollup_length (
    stream   TEXT    NOT NULL,
    hour_ms  BIGINT  NOT NULL,
    bin      BIGINT  NOT NULL,
    n        BIGINT  NOT NULL,
    PRIMARY KEY (stream, hour_ms, bin)
);

-- Per stream, judge and hour: score moments (Welch's t needs no more).
CREATE TABLE rollup_scores (
    stream   TEXT    NOT NULL,
    judge    TEXT    NOT NULL,
    hour_ms  BIGINT  NOT NULL,
    n        BIGINT  NOT NULL,
    sum      DOUBLE PRECISION    NOT NULL,
    sumsq    DOUBLE PRECISION    NOT NULL,
    PRIMARY KEY (stream, judge, hour_ms)
);

-- Embedding sums per stream and hour. Insert-only partial sums (one row per
-- write batch) so concurrent writers never contend; readers add them up.
CREATE TABLE rollup_embedding (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream   TEXT    NOT NULL,
    hour_ms  BIGINT  NOT NULL,
    n        BIGINT  NOT NULL,
    dims     BIGINT  NOT NULL,
    sum      BYTEA    NOT NULL                      -- little-endian f64 x dims
);
CREATE INDEX rollup_embedding_stream ON rollup_embedding (stream, hour_ms);
