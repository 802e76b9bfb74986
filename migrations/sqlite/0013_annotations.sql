-- Change annotations (issue 18): deployment events recorded by people or
-- pipelines (`POST /api/v1/annotations`, `canaryd annotate`) or seen in
-- traffic, drawn on the charts and cited by alerts that start near them.

CREATE TABLE annotations (
    id          INTEGER PRIMARY KEY,
    stream      TEXT    NOT NULL,             -- a stream name, or '*' for all streams
    kind        TEXT    NOT NULL,             -- deploy | prompt | index | tool | model
    text        TEXT    NOT NULL,             -- at most 1024 bytes, validated on the way in
    ts_ms       INTEGER NOT NULL,             -- when the change happened
    source      TEXT    NOT NULL,             -- api | cli | auto
    created_ms  INTEGER NOT NULL              -- when it was recorded
);
CREATE INDEX annotations_stream_ts ON annotations (stream, ts_ms);
