-- Session writes at ingest rate (issue 15's >= 20,000 records/s bound).
--
-- `session_events.ext_id` was UNIQUE for every event, so each record paid a
-- second unique-index insert although an inference event is written only
-- for a response this transaction inserted, and `responses.ext_id` is
-- unique already. Only agent/tool spans (`session_only`, no response row)
-- need their own guard against counting twice: a partial unique index.
-- SQLite cannot drop a column's UNIQUE constraint, so the table is rebuilt.
CREATE TABLE session_events_new (
    id          INTEGER PRIMARY KEY,
    ext_id      TEXT    NOT NULL,             -- the record's id
    stream      TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    ts_ms       BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,             -- inference | tool | agent
    agent       TEXT,
    tools       TEXT,                         -- JSON [{name, hash, call_id, args}]
    tokens      BIGINT  NOT NULL,
    cost_usd    REAL NOT NULL,
    user_id     TEXT
);
INSERT INTO session_events_new (id, ext_id, stream, session_id, ts_ms, kind, agent, tools, tokens, cost_usd, user_id)
    SELECT id, ext_id, stream, session_id, ts_ms, kind, agent, tools, tokens, cost_usd, user_id FROM session_events;
DROP TABLE session_events;
ALTER TABLE session_events_new RENAME TO session_events;
CREATE INDEX session_events_by_session ON session_events (stream, session_id, ts_ms);
-- A repeated agent/tool span never counts twice (inference events: responses.ext_id).
CREATE UNIQUE INDEX session_events_span ON session_events (ext_id) WHERE kind <> 'inference';

-- The monitor reads only dirty sessions: the index holds only them, so
-- marking a session checked removes its entry instead of moving it.
DROP INDEX sessions_dirty;
CREATE INDEX sessions_dirty ON sessions (seen_ms) WHERE dirty;
