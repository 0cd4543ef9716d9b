-- Lean exposition and alert routing (issues 15 and 16): a monitor's team and alert severity
-- ('' = none), and whether its run duration histogram is exported (NULL = the global setting).
ALTER TABLE integration_monitor ADD COLUMN team TEXT NOT NULL DEFAULT ''
    CHECK (length(team) <= 64);
ALTER TABLE integration_monitor ADD COLUMN severity TEXT NOT NULL DEFAULT ''
    CHECK (severity IN ('', 'critical', 'warning', 'info'));
ALTER TABLE integration_monitor ADD COLUMN duration_histogram INTEGER
    CHECK (duration_histogram IN (0, 1));
