-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d).
-- POSTGRES_DB creates Portico's database; these are Temporal's (history and visibility),
-- whose schemas temporalio/auto-setup then installs and upgrades.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
