"""What makes the sandbox's source behave like RDS MySQL where MariaDB can: RDS's own
configuration procedures, with binlog retention NULL (RDS purges binlogs as soon as no
replica needs them) until ``mysql.rds_set_configuration`` says otherwise."""

from __future__ import annotations

PROCEDURES = (
    """CREATE TABLE IF NOT EXISTS mysql.rds_configuration (
         name VARCHAR(100) PRIMARY KEY, value VARCHAR(100) NULL, description VARCHAR(300))""",
    """INSERT IGNORE INTO mysql.rds_configuration VALUES ('binlog retention hours', NULL,
         'binlog retention hours specifies the duration in hours before binary logs are
         automatically deleted.')""",
    """CREATE OR REPLACE PROCEDURE mysql.rds_show_configuration()
         SELECT name, value, description FROM mysql.rds_configuration""",
    """CREATE OR REPLACE PROCEDURE mysql.rds_set_configuration(IN name_ VARCHAR(100),
         IN value_ INT)
         UPDATE mysql.rds_configuration SET value = value_ WHERE name = name_""",
    "GRANT EXECUTE ON PROCEDURE mysql.rds_show_configuration TO 'admin'@'%'",
    "GRANT EXECUTE ON PROCEDURE mysql.rds_set_configuration TO 'admin'@'%'",
)


def install(cursor) -> None:
    for statement in PROCEDURES:
        cursor.execute(statement)
