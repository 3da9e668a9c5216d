"""The store function: every stored event type into its PostgreSQL/TimescaleDB table."""
