"""Persistence: tables, migrations, repositories, the audit trail."""
