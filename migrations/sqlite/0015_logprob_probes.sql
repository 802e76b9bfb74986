-- Logprob probes (issue 17): the top-k next-token log-probabilities of a
-- suite's fixed probe prompts, one row per (run, target, probe), tested
-- against the target's own history by `signals::logprob_shift`.

CREATE TABLE logprob_probes (
    id                  INTEGER PRIMARY KEY,
    run_id              INTEGER NOT NULL,
    suite               TEXT    NOT NULL,
    target              TEXT    NOT NULL,
    probe_id            TEXT    NOT NULL,
    prompt_hash         TEXT    NOT NULL,             -- sha256 of the request: history is compared only within one
    status              TEXT    NOT NULL,             -- ok | unsupported | provider_error
    token               TEXT,                         -- the first generated token
    top_logprobs        TEXT,                         -- JSON [{token, logprob}], best first
    response_model      TEXT,
    system_fingerprint  TEXT,
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    error               TEXT,
    at_ms               INTEGER NOT NULL
);
CREATE INDEX logprob_probes_target_run ON logprob_probes (suite, target, run_id);
CREATE INDEX logprob_probes_at ON logprob_probes (at_ms);
