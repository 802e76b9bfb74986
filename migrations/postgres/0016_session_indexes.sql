-- Session writes at ingest rate (issue 15's >= 20,000 records/s bound).
--
-- `session_events.ext_id` was UNIQUE for every event, so each record paid a
-- second unique-index insert although an inference event is written only
-- for a response this transaction inserted, and `responses.ext_id` is
-- unique already. Only agent/tool spans (`session_only`, no response row)
-- need their own guard against counting twice: a partial unique index.
ALTER TABLE session_events DROP CONSTRAINT session_events_ext_id_key;
-- A repeated agent/tool span never counts twice (inference events: responses.ext_id).
CREATE UNIQUE INDEX session_events_span ON session_events (ext_id) WHERE kind <> 'inference';

-- The monitor reads only dirty sessions: the index holds only them, so
-- marking a session checked removes its entry instead of moving it.
DROP INDEX sessions_dirty;
CREATE INDEX sessions_dirty ON sessions (seen_ms) WHERE dirty;
