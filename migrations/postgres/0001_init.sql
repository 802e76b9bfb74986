-- Core schema (PostgreSQL twin of migrations/sqlite). All timestamps are UTC milliseconds since the Unix epoch
-- (columns ending in _ms), the one representation both backends compare alike.

-- Every distinct content of a suite ever run; results point at one of these.
CREATE TABLE suite_versions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    suite         TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    content_hash  TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    first_seen_ms BIGINT  NOT NULL,
    UNIQUE (suite, version, content_hash)
);

-- One execution of a suite. A scheduled run is unique per (suite, tick), which
-- is how replicas sharing a database run each tick exactly once.
CREATE TABLE canary_runs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    suite            TEXT    NOT NULL,
    suite_version    BIGINT  NOT NULL,
    content_hash     TEXT    NOT NULL,
    trigger          TEXT    NOT NULL,            -- schedule | catchup | manual
    scheduled_for_ms BIGINT,
    started_ms       BIGINT  NOT NULL,
    finished_ms      BIGINT,
    status           TEXT    NOT NULL,            -- running | completed | cancelled | abandoned
    owner            TEXT    NOT NULL,            -- replica id
    heartbeat_ms     BIGINT  NOT NULL,
    cases_total      BIGINT  NOT NULL DEFAULT 0,
    passed           BIGINT  NOT NULL DEFAULT 0,
    failed           BIGINT  NOT NULL DEFAULT 0,
    provider_errors  BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX canary_runs_tick ON canary_runs (suite, scheduled_for_ms)
    WHERE scheduled_for_ms IS NOT NULL;
CREATE INDEX canary_runs_suite_started ON canary_runs (suite, started_ms);

-- One case against one target within a run.
CREATE TABLE canary_results (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id             BIGINT  NOT NULL REFERENCES canary_runs (id) ON DELETE CASCADE,
    suite              TEXT    NOT NULL,
    case_id            TEXT    NOT NULL,
    target             TEXT    NOT NULL,          -- model name from the config (pinned, live, ...)
    requested_model    TEXT    NOT NULL,
    response_model     TEXT,
    system_fingerprint TEXT,
    finish_reason      TEXT,
    input_tokens       BIGINT,
    output_tokens      BIGINT,
    latency_ms         BIGINT,
    request            TEXT    NOT NULL,          -- JSON of the messages sent
    answer             TEXT,
    outcome            TEXT    NOT NULL,          -- pass | fail | provider_error
    verdicts           TEXT    NOT NULL,          -- JSON array of expectation verdicts
    error              TEXT,
    agrees_with_pinned BOOLEAN,
    created_ms         BIGINT  NOT NULL
);
CREATE INDEX canary_results_run ON canary_results (run_id);
CREATE INDEX canary_results_case ON canary_results (suite, case_id, target, created_ms);

-- The model identity last seen per scope (a suite target or a stream) and
-- requested model; a change becomes a row in model_events.
CREATE TABLE model_identity (
    scope              TEXT    NOT NULL,
    requested_model    TEXT    NOT NULL,
    response_model     TEXT,
    system_fingerprint TEXT,
    seen_ms            BIGINT  NOT NULL,
    PRIMARY KEY (scope, requested_model)
);

CREATE TABLE model_events (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms              BIGINT  NOT NULL,
    scope              TEXT    NOT NULL,          -- "suite:<name>:<target>" or "stream:<name>"
    requested_model    TEXT    NOT NULL,
    old_model          TEXT,
    new_model          TEXT,
    old_fingerprint    TEXT,
    new_fingerprint    TEXT
);
CREATE INDEX model_events_scope ON model_events (scope, at_ms);

-- Production responses as ingested. ext_id is the client's idempotency key.
CREATE TABLE responses (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ext_id             TEXT UNIQUE,
    stream             TEXT    NOT NULL,
    ts_ms              BIGINT  NOT NULL,
    received_ms        BIGINT  NOT NULL,
    prompt_version     TEXT,
    request_model      TEXT,
    response_model     TEXT,
    system_fingerprint TEXT,
    input              TEXT,                      -- JSON: a string or chat messages
    context            TEXT,                      -- JSON array of passages
    output             TEXT    NOT NULL,
    finish_reason      TEXT,
    input_tokens       BIGINT,
    output_tokens      BIGINT  NOT NULL,          -- given, or counted by canaryd
    latency_ms         BIGINT,
    session_id         TEXT,
    tool_calls         TEXT,                      -- JSON
    refusal            BOOLEAN NOT NULL,          -- from the refusal classifier
    sampled            BOOLEAN NOT NULL DEFAULT FALSE,
    embedding          BYTEA                       -- little-endian f32
);
CREATE INDEX responses_stream_ts ON responses (stream, ts_ms);

-- Named leases for work that one replica at a time must do.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_ms BIGINT  NOT NULL
);
