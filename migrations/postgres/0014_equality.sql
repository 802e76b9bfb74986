-- Canary equality testing (PostgreSQL twin of migrations/sqlite): the extra
-- answers a suite's `equality:` block samples per case, target and run, and
-- the test of each (target, reference) per run that `model_drift` reads.

CREATE TABLE equality_samples (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      BIGINT  NOT NULL,
    suite       TEXT    NOT NULL,
    case_id     TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL
);
CREATE INDEX equality_samples_history ON equality_samples (suite, target, case_id, created_ms);
CREATE INDEX equality_samples_created ON equality_samples (suite, created_ms);

CREATE TABLE equality_tests (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      BIGINT  NOT NULL,
    suite       TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    reference   TEXT    NOT NULL,             -- target:<name> | history:<span>
    at_ms       BIGINT  NOT NULL,
    p_value     DOUBLE PRECISION NOT NULL,    -- Fisher's combination over the cases
    log_e       DOUBLE PRECISION NOT NULL,    -- ln of the run's e-value
    threshold   DOUBLE PRECISION NOT NULL,    -- the alarm's h: ln(runs a year × references)
    cases       BIGINT  NOT NULL,             -- cases tested
    top         TEXT    NOT NULL,             -- JSON: the cases that moved most, with example answers
    UNIQUE (run_id, target, reference)
);
CREATE INDEX equality_tests_suite_at ON equality_tests (suite, at_ms);
