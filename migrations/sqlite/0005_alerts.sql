-- Alerts with their lifecycle and history, the notification outbox, and silences.

-- One row per (rule, stream, dimension); dimension '' when the detector has none.
-- state: pending (firing, waiting for group_wait) | firing | resolved.
-- rev is bumped on every write so concurrent writers (replicas) can detect
-- that they raced and back off instead of notifying twice.
CREATE TABLE alerts (
    id               INTEGER PRIMARY KEY,
    rule             TEXT    NOT NULL,
    stream           TEXT    NOT NULL,
    dimension        TEXT    NOT NULL DEFAULT '',
    state            TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    value            REAL    NOT NULL,
    baseline         REAL    NOT NULL,
    threshold        REAL    NOT NULL,
    p_value          REAL,
    samples          INTEGER NOT NULL,
    baseline_samples INTEGER NOT NULL,
    summary          TEXT    NOT NULL,
    pending_ms       INTEGER,                  -- when the current episode began
    firing_ms        INTEGER,                  -- when it was promoted to firing
    resolved_ms      INTEGER,
    last_eval_ms     INTEGER NOT NULL,         -- at_ms of the last finding
    last_notified_ms INTEGER,                  -- last firing notification of this episode
    resolve_pending  INTEGER NOT NULL DEFAULT 0, -- 1: a resolve notice is owed
    rev              INTEGER NOT NULL DEFAULT 0,
    UNIQUE (rule, stream, dimension)
);
CREATE INDEX alerts_state ON alerts (state, stream);

-- Every state change, for the record.
CREATE TABLE alert_history (
    id         INTEGER PRIMARY KEY,
    alert_id   INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at_ms      INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    value      REAL,
    note       TEXT
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, at_ms);

-- The outbox: one rendered message for one channel. Rows are never deleted
-- on failure; they are retried at next_attempt_ms until sent.
-- state: pending | sent.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    channel         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,          -- email | slack | webhook
    stream          TEXT    NOT NULL,
    status          TEXT    NOT NULL,          -- firing | resolved (of the message)
    title           TEXT    NOT NULL,
    body            TEXT    NOT NULL,          -- JSON, ready to send
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    sent_ms         INTEGER
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_ms);

CREATE TABLE notification_alerts (
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    PRIMARY KEY (notification_id, alert_id)
);
CREATE INDEX notification_alerts_alert ON notification_alerts (alert_id);

-- Silences mute notifications of matching alerts until ends_ms; detection goes on.
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    rule       TEXT,                           -- exact or glob; NULL matches all
    stream     TEXT,
    severity   TEXT,
    starts_ms  INTEGER NOT NULL,
    ends_ms    INTEGER NOT NULL,
    comment    TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_ms);
