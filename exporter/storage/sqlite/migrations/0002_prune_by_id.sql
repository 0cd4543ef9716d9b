-- Retention finds old rows by id (ids grow with created_at), so reports no longer pay for an
-- index on created_at at every insert.
DROP INDEX batch_by_created;
DROP INDEX log_by_created;
