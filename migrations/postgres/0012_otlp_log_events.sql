-- GenAI events received as OTLP log records before their span's record:
-- kept here until the span arrives and takes them (content, evaluation
-- scores), so an early log is stored, never dropped.
CREATE TABLE otlp_log_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ext_id      TEXT    NOT NULL,             -- otel:<trace id>:<span id>
    input       TEXT,                         -- record input (JSON), or NULL
    output      TEXT,                         -- output text, or NULL
    scores      TEXT    NOT NULL,             -- JSON object judge -> score
    received_ms BIGINT  NOT NULL
);
CREATE INDEX otlp_log_events_ext ON otlp_log_events (ext_id);
