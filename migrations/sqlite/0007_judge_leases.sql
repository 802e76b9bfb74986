-- Judge queue hardening (issue 14): the spend reserved for a job's call in
-- flight, kept on the job so that a reservation whose lease expired (the
-- worker died) is given back instead of staying charged for the day.
ALTER TABLE judge_jobs ADD COLUMN reserved_day_ms INTEGER;
ALTER TABLE judge_jobs ADD COLUMN reserved_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE judge_jobs ADD COLUMN reserved_usd    REAL    NOT NULL DEFAULT 0;
