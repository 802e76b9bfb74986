-- The judge queue, per-stream sampling counters and judge spend.
-- A job is one (response, judge) pair; it survives restarts because it lives
-- here. A claimed job carries a lease: when the lease expires (its worker
-- died) another worker takes it over. judge_scores' unique (response_id,
-- judge) index makes a second score for the same pair impossible.

CREATE TABLE judge_jobs (
    id               INTEGER PRIMARY KEY,
    response_id      INTEGER NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    judge            TEXT    NOT NULL,
    stream           TEXT    NOT NULL,
    ts_ms            INTEGER NOT NULL,
    status           TEXT    NOT NULL,          -- pending | running | done | failed | skipped
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before_ms    INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms INTEGER,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    finished_ms      INTEGER,
    UNIQUE (response_id, judge)
);
CREATE INDEX judge_jobs_ready ON judge_jobs (status, not_before_ms);
CREATE INDEX judge_jobs_lease ON judge_jobs (status, lease_expires_ms);

-- Records chosen for judging per stream and hour (of the record's time), for
-- the hourly floor and cap.
CREATE TABLE judge_sample_hourly (
    stream   TEXT    NOT NULL,
    hour_ms  INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (stream, hour_ms)
);

-- Judge spend per UTC day: reserved before each call (an upper bound of its
-- cost), corrected to the actual usage after it. The daily budget is checked
-- against the reservation, so it is never exceeded.
CREATE TABLE judge_spend (
    day_ms   INTEGER PRIMARY KEY,
    tokens   INTEGER NOT NULL,
    usd      REAL    NOT NULL
);
