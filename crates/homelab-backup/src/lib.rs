//! Backup and restore of the lab's data: the PostgreSQL dump scripts, their status records, drills and restores.
