"""The PostgreSQL store: several replicas of the service on one database."""
