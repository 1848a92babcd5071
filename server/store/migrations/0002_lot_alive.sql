-- When the process serving a lot last said it was alive (ms since the epoch; Store.touch).
-- A takeover measures the outage from this stamp.
ALTER TABLE lots ADD COLUMN alive_at bigint;
