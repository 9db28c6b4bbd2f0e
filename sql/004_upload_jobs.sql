-- One row per upload whose bytes are not stored yet, written in the same transaction as its
-- WAITING binary_contents row (the bytes are staged on disk before that commit). The row says
-- who to notify and which process owns the upload, so an upload interrupted by a crash is
-- finished (staged bytes found) or failed (FAILED, ASYNC_FAILED, binaryContents.status) at
-- the next start instead of staying WAITING forever.

CREATE TABLE IF NOT EXISTS upload_jobs (
    binary_content_id  uuid PRIMARY KEY REFERENCES binary_contents (id) ON DELETE CASCADE,
    kind               varchar(20) NOT NULL CHECK (kind IN ('PROFILE', 'ATTACHMENT')),
    uploader_id        uuid,
    request_id         varchar(255) NOT NULL,
    instance_id        varchar(255) NOT NULL,  -- DISCODEIT_INSTANCE_ID of the owner
    incarnation        uuid NOT NULL,          -- the owner's process run
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS upload_jobs_created_at ON upload_jobs (created_at);
