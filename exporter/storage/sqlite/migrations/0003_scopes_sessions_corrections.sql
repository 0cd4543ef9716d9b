-- Idempotency-Keys are scoped per token and monitor: two jobs (or two monitors) that happen to
-- pick the same key no longer collide, and one token cannot replay another's answers. Keys from
-- before (token '') still match any token of their monitor until they expire (a day).
CREATE TABLE idempotency_key_scoped (
    monitor_id INTEGER NOT NULL REFERENCES integration_monitor (id) ON DELETE CASCADE,
    token TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id INTEGER NOT NULL,
    truncated TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    PRIMARY KEY (monitor_id, key, token)
) WITHOUT ROWID;
INSERT INTO idempotency_key_scoped
    SELECT coalesce(b.monitor_id, l.monitor_id), '', k.key, k.fingerprint, k.resource,
           k.resource_id, k.truncated, k.created_at
    FROM idempotency_key k
    LEFT JOIN integration_monitor_batch b ON k.resource = 'batch' AND b.id = k.resource_id
    LEFT JOIN integration_monitor_log l ON k.resource = 'log' AND l.id = k.resource_id
    WHERE coalesce(b.monitor_id, l.monitor_id) IS NOT NULL;
DROP TABLE idempotency_key;
ALTER TABLE idempotency_key_scoped RENAME TO idempotency_key;
CREATE INDEX idempotency_by_created ON idempotency_key (created_at);

-- A finished batch reported again with other values: kept, so the monitor page can show it.
CREATE TABLE batch_correction (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES integration_monitor_batch (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    token TEXT NOT NULL,
    old_status TEXT NOT NULL,
    new_status TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX correction_by_batch ON batch_correction (batch_id, id);

-- Status page sign-in: the cookie holds a random id; only its hash and the token's hash are kept.
CREATE TABLE web_session (
    id_hash BLOB PRIMARY KEY,
    token_digest BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX session_by_token ON web_session (token_digest, created_at);
