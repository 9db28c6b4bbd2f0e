-- Transactional outbox for multi-instance mode: every realtime event is written here in the
-- transaction of the change it announces, and one relay (the instance holding the advisory
-- lock) publishes pending rows to Kafka in id order and marks them sent.

CREATE TABLE IF NOT EXISTS outbox (
    id          bigserial PRIMARY KEY,
    family      varchar(20) NOT NULL,   -- the topic family: messages, sse, revocations, broker
    key         text NOT NULL,          -- the Kafka key: channel, user or destination
    payload     text NOT NULL,          -- the domain event as JSON
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
