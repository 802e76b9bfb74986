-- Agent sessions (issue 15): one summary row per (stream, session) kept up
-- to date in the ingest transaction, and one event per stored record or
-- agent/tool span of a session (the timeline the session detectors read).

CREATE TABLE sessions (
    stream      TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    first_ms    BIGINT  NOT NULL,             -- earliest event time
    last_ms     BIGINT  NOT NULL,             -- latest event time
    seen_ms     BIGINT  NOT NULL,             -- latest receive time (idle expiry)
    calls       BIGINT  NOT NULL,             -- inference calls + executed tools
    tokens      BIGINT  NOT NULL,             -- input + output tokens
    cost_usd    DOUBLE PRECISION NOT NULL,
    user_id     TEXT,
    state       TEXT    NOT NULL,             -- active | expired
    dirty       BOOLEAN NOT NULL,             -- changed since the detectors last looked
    version     BIGINT  NOT NULL,             -- bumped on every change (compare-and-clear)
    fired       TEXT    NOT NULL DEFAULT '',  -- rules that fired for it, comma-separated
    PRIMARY KEY (stream, session_id)
);
CREATE INDEX sessions_dirty ON sessions (dirty, seen_ms);
CREATE INDEX sessions_state_seen ON sessions (state, seen_ms);

CREATE TABLE session_events (
    id          BIGSERIAL PRIMARY KEY,
    ext_id      TEXT    NOT NULL UNIQUE,      -- the record's id: a repeat never counts twice
    stream      TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    ts_ms       BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,             -- inference | tool | agent
    agent       TEXT,
    tools       TEXT,                         -- JSON [{name, hash, call_id, args}]
    tokens      BIGINT  NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    user_id     TEXT
);
CREATE INDEX session_events_by_session ON session_events (stream, session_id, ts_ms);

-- Spend per (stream, hour, user) of stored responses ('' = no user), from
-- the application's cost_usd or the model's prices; spend_rate reads it.
CREATE TABLE rollup_spend (
    stream      TEXT    NOT NULL,
    hour_ms     BIGINT  NOT NULL,
    user_id     TEXT    NOT NULL,
    n           BIGINT  NOT NULL,
    tokens      BIGINT  NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (stream, hour_ms, user_id)
);
CREATE INDEX rollup_spend_hour ON rollup_spend (hour_ms);
