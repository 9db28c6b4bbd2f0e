-- The outbox relay's leadership as a lease (replaces the session advisory lock, which a paused
-- but living leader kept for good). One row: who holds it, its epoch (bumped at every change of
-- holder, the fencing token), and when it expires unless renewed. The database's clock is the
-- only clock that decides.

CREATE TABLE IF NOT EXISTS relay_lease (
    id          int PRIMARY KEY CHECK (id = 1),
    holder      text NOT NULL,
    epoch       bigint NOT NULL,
    expires_at  timestamptz NOT NULL
);

INSERT INTO relay_lease (id, holder, epoch, expires_at)
VALUES (1, '', 0, '-infinity')
ON CONFLICT (id) DO NOTHING;
