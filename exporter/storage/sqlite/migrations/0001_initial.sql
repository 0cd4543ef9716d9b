-- The original's three tables (field names kept), plus ids and times (Unix seconds, UTC).
CREATE TABLE integration_monitor (
    id INTEGER PRIMARY KEY,
    integration_key TEXT NOT NULL UNIQUE CHECK (length(integration_key) BETWEEN 1 AND 32),
    name TEXT NOT NULL CHECK (length(name) <= 32),
    type TEXT NOT NULL CHECK (type IN ('batch', 'message')),
    active INTEGER NOT NULL DEFAULT 1,
    alert_interval INTEGER NOT NULL DEFAULT 0,
    alert_no_creates_deceeds INTEGER NOT NULL DEFAULT 0,
    alert_no_updates_deceeds INTEGER NOT NULL DEFAULT 0,
    alert_no_deletes_deceeds INTEGER NOT NULL DEFAULT 0,
    alertstatus TEXT NOT NULL DEFAULT 'notcalculated'
        CHECK (alertstatus IN ('notcalculated', 'ok', 'error')),
    alerttext TEXT NOT NULL DEFAULT '' CHECK (length(alerttext) <= 256),
    alert_timestamp REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TABLE integration_monitor_batch (
    id INTEGER PRIMARY KEY,
    monitor_id INTEGER NOT NULL REFERENCES integration_monitor (id) ON DELETE CASCADE,
    logstatus TEXT NOT NULL,
    integrationid TEXT NOT NULL DEFAULT '' CHECK (length(integrationid) <= 64),
    starttime REAL NOT NULL,
    endtime REAL,
    duration REAL,
    no_created INTEGER NOT NULL DEFAULT 0,
    no_updated INTEGER NOT NULL DEFAULT 0,
    no_deleted INTEGER NOT NULL DEFAULT 0,
    logtext TEXT NOT NULL DEFAULT '' CHECK (length(logtext) <= 256),
    errormsg TEXT NOT NULL DEFAULT '' CHECK (length(errormsg) <= 1024),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX batch_by_monitor_start ON integration_monitor_batch (monitor_id, starttime, id);
CREATE INDEX batch_by_created ON integration_monitor_batch (created_at);

CREATE TABLE integration_monitor_log (
    id INTEGER PRIMARY KEY,
    monitor_id INTEGER NOT NULL REFERENCES integration_monitor (id) ON DELETE CASCADE,
    batch_id INTEGER REFERENCES integration_monitor_batch (id) ON DELETE SET NULL,
    logstatus TEXT NOT NULL,
    integrationid TEXT NOT NULL DEFAULT '' CHECK (length(integrationid) <= 64),
    logtext TEXT NOT NULL DEFAULT '' CHECK (length(logtext) <= 256),
    errormsg TEXT NOT NULL DEFAULT '' CHECK (length(errormsg) <= 1024),
    message TEXT NOT NULL DEFAULT '' CHECK (length(message) <= 1024),
    created_at REAL NOT NULL
);
CREATE INDEX log_by_monitor ON integration_monitor_log (monitor_id, created_at, id);
CREATE INDEX log_by_batch ON integration_monitor_log (batch_id);
CREATE INDEX log_by_created ON integration_monitor_log (created_at);

-- Every change of a monitor's alertstatus, so history survives.
CREATE TABLE alert_transition (
    id INTEGER PRIMARY KEY,
    monitor_id INTEGER NOT NULL REFERENCES integration_monitor (id) ON DELETE CASCADE,
    old_status TEXT NOT NULL,
    new_status TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX transition_by_monitor ON alert_transition (monitor_id, at);

-- Per-monitor counters that survive pruning: kind is runs, logs, objects or duration;
-- name is the status, operation, or histogram bucket bound ('sum' for the duration sum).
CREATE TABLE monitor_counter (
    monitor_id INTEGER NOT NULL REFERENCES integration_monitor (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (monitor_id, kind, name)
) WITHOUT ROWID;

-- Idempotency-Key of reports: the same key and request returns the first result.
CREATE TABLE idempotency_key (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id INTEGER NOT NULL,
    truncated TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_by_created ON idempotency_key (created_at);
