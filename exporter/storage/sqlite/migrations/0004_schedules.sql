-- Schedules (issue 13): a cron expression read in a time zone, with grace and a maximum run
-- time. Existing monitors keep their alert_interval and get no schedule ('' = none).
ALTER TABLE integration_monitor ADD COLUMN schedule TEXT NOT NULL DEFAULT ''
    CHECK (length(schedule) <= 100);
ALTER TABLE integration_monitor ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC'
    CHECK (length(timezone) <= 64);
ALTER TABLE integration_monitor ADD COLUMN grace INTEGER NOT NULL DEFAULT 10;
ALTER TABLE integration_monitor ADD COLUMN max_runtime INTEGER NOT NULL DEFAULT 0;
