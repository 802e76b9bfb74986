-- Issue 13: a judge scoring a sampled record also labels whether the answer
-- is a refusal; compared with the refusal classifier's `responses.refusal`
-- on the stream page. NULL: the judge gave no label (or an older judge).
ALTER TABLE judge_scores ADD COLUMN refusal INTEGER;
