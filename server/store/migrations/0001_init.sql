-- bidhall event store, first version. Applied by server/store/migrate.py in one transaction,
-- with search_path set to the target schema: name no schema here.

-- The head of each lot: the fence every append checks and advances (see PostgresStore).
CREATE TABLE lots (
    lot_id   text   PRIMARY KEY,
    head_seq bigint NOT NULL
);

-- Every event of every lot. body is the event's JSON exactly as the server encoded it (text,
-- not jsonb: jsonb would reorder keys and respace, and the record must read back byte for byte).
-- The primary key is the last fence: two events can never share a seq.
CREATE TABLE events (
    lot_id text   NOT NULL,
    seq    bigint NOT NULL,
    pseq   bigint,
    at     bigint NOT NULL,
    kind   text   NOT NULL,
    body   text   NOT NULL,
    PRIMARY KEY (lot_id, seq)
);
CREATE UNIQUE INDEX events_public ON events (lot_id, pseq) WHERE pseq IS NOT NULL;
-- lot_ids(): the first event of every lot, oldest first, without scanning the whole log.
CREATE INDEX events_first ON events (at, lot_id) WHERE seq = 1;

-- Refused bids. n keeps the order they were refused in (SQLite's rowid).
CREATE TABLE refusals (
    lot_id  text   NOT NULL,
    bidder  text   NOT NULL,
    bid_id  text   NOT NULL,
    amount  bigint NOT NULL,
    code    text   NOT NULL,
    at      bigint NOT NULL,
    message text   NOT NULL DEFAULT '',
    details text   NOT NULL DEFAULT '{}',
    n       bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (lot_id, bidder, bid_id)
);

CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
