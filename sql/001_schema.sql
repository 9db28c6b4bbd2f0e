-- Discodeit schema. Table and column names follow the sprint-12 reference so an existing
-- database can be migrated in place.

CREATE TABLE IF NOT EXISTS binary_contents (
    id             uuid PRIMARY KEY,
    created_at     timestamptz NOT NULL,
    file_name      varchar(255) NOT NULL,
    size           bigint NOT NULL,
    content_type   varchar(100) NOT NULL,
    upload_status  varchar(20) NOT NULL DEFAULT 'WAITING'
);

CREATE TABLE IF NOT EXISTS users (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz,
    username    varchar(50) NOT NULL UNIQUE,
    email       varchar(100) NOT NULL UNIQUE,
    password    varchar(60) NOT NULL,
    profile_id  uuid UNIQUE REFERENCES binary_contents (id) ON DELETE SET NULL,
    role        varchar(20) NOT NULL DEFAULT 'USER'
);

CREATE TABLE IF NOT EXISTS channels (
    id           uuid PRIMARY KEY,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz,
    name         varchar(100),
    description  varchar(500),
    type         varchar(10) NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz,
    content     text,
    channel_id  uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    author_id   uuid REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS messages_channel_created_idx ON messages (channel_id, created_at DESC);

CREATE TABLE IF NOT EXISTS message_attachments (
    message_id     uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    attachment_id  uuid NOT NULL REFERENCES binary_contents (id) ON DELETE CASCADE,
    order_index    int NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, attachment_id)
);

CREATE TABLE IF NOT EXISTS read_statuses (
    id                    uuid PRIMARY KEY,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz,
    user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id            uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    last_read_at          timestamptz NOT NULL,
    notification_enabled  boolean NOT NULL DEFAULT false,
    UNIQUE (user_id, channel_id)
);
CREATE INDEX IF NOT EXISTS read_statuses_channel_idx ON read_statuses (channel_id);

CREATE TABLE IF NOT EXISTS notifications (
    id           uuid PRIMARY KEY,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz,
    receiver_id  uuid NOT NULL,
    title        varchar(255) NOT NULL,
    content      text NOT NULL,
    type         varchar(30) NOT NULL,
    target_id    uuid
);
CREATE INDEX IF NOT EXISTS notifications_receiver_idx ON notifications (receiver_id, created_at DESC);

CREATE TABLE IF NOT EXISTS async_task_failures (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    task_name   varchar(255) NOT NULL,
    request_id  varchar(255),
    failure_reason text NOT NULL
);
