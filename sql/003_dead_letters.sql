-- Events that can never be written to the outbox or sent to Kafka (a NUL in a key, a record
-- over the broker's size limit, a payload that is not an event). The outbox writer and the
-- relay move such an event here, log it, and carry on with the ones behind it, so one poison
-- event never stalls the pipeline. bytea, not text: the poison may be a byte PostgreSQL
-- refuses in text (NUL).

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial PRIMARY KEY,
    source      varchar(20) NOT NULL CHECK (source IN ('outbox-writer', 'relay')),
    kind        varchar(20) NOT NULL,   -- the topic family: messages, sse, revocations, broker
    outbox_id   bigint,                 -- the outbox row it came from (relay only)
    key         bytea NOT NULL,         -- the Kafka key
    payload     bytea NOT NULL,         -- the event (JSON) or the outbox row's payload
    error       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at);
