"""Storage behind one interface (`contract.Store`): memory for tests, SQL for SQLite and PostgreSQL."""
