-- Canary equality testing (issue 17): the extra answers a suite's
-- `equality:` block samples per case, target and run, and the test of each
-- (target, reference) per run that the `model_drift` detector reads.

CREATE TABLE equality_samples (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL,
    suite       TEXT    NOT NULL,
    case_id     TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX equality_samples_history ON equality_samples (suite, target, case_id, created_ms);
CREATE INDEX equality_samples_created ON equality_samples (suite, created_ms);

CREATE TABLE equality_tests (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL,
    suite       TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    reference   TEXT    NOT NULL,             -- target:<name> | history:<span>
    at_ms       INTEGER NOT NULL,
    p_value     REAL    NOT NULL,             -- Fisher's combination over the cases
    log_e       REAL    NOT NULL,             -- ln of the run's e-value
    threshold   REAL    NOT NULL,             -- the alarm's h for this run: ln(runs a year × references)
    cases       INTEGER NOT NULL,             -- cases tested
    top         TEXT    NOT NULL,             -- JSON: the cases that moved most, with example answers
    UNIQUE (run_id, target, reference)
);
CREATE INDEX equality_tests_suite_at ON equality_tests (suite, at_ms);
