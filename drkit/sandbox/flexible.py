"""What makes the sandbox's target behave like Azure Database for MySQL Flexible Server
where MariaDB can: the server admin's privileges and the time-zone procedure."""

from __future__ import annotations

# Flexible Server's admin: no SUPER, no FILE (Microsoft's list for the server admin).
ADMIN_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, "
    "ALTER, SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, "
    "REPLICATION SLAVE, REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, "
    "ALTER ROUTINE, CREATE USER, EVENT, TRIGGER")


def load_time_zones(cursor) -> None:
    """Fill the time-zone tables with the demo's zones, as az_load_timezone() would."""
    cursor.execute("SELECT COUNT(*) FROM mysql.time_zone_name WHERE Name = 'Asia/Seoul'")
    if cursor.fetchone()[0]:
        return
    cursor.execute(AZ_LOAD_TIMEZONE)
    cursor.execute("CALL mysql.az_load_timezone()")
    cursor.execute("DROP PROCEDURE mysql.az_load_timezone")


# A stand-in for Flexible Server's mysql.az_load_timezone(), which fills the time-zone
# tables from the server's zoneinfo; here the zones the demo database and the tests use,
# as fixed offsets.
AZ_LOAD_TIMEZONE = """
CREATE OR REPLACE PROCEDURE mysql.az_load_timezone()
BEGIN
  DELETE FROM mysql.time_zone_name WHERE Name IN ('Asia/Seoul', 'Europe/Berlin');
  INSERT INTO mysql.time_zone (Use_leap_seconds) VALUES ('N');
  SET @seoul = LAST_INSERT_ID();
  INSERT INTO mysql.time_zone_name (Name, Time_zone_id) VALUES ('Asia/Seoul', @seoul);
  INSERT INTO mysql.time_zone_transition_type (Time_zone_id, Transition_type_id, `Offset`,
    Is_DST, Abbreviation) VALUES (@seoul, 0, 32400, 0, 'KST');
  INSERT INTO mysql.time_zone (Use_leap_seconds) VALUES ('N');
  SET @berlin = LAST_INSERT_ID();
  INSERT INTO mysql.time_zone_name (Name, Time_zone_id) VALUES ('Europe/Berlin', @berlin);
  INSERT INTO mysql.time_zone_transition_type (Time_zone_id, Transition_type_id, `Offset`,
    Is_DST, Abbreviation) VALUES (@berlin, 0, 3600, 0, 'CET');
  DELETE FROM mysql.time_zone_name WHERE Name = 'America/Sao_Paulo';
  INSERT INTO mysql.time_zone (Use_leap_seconds) VALUES ('N');
  SET @sao_paulo = LAST_INSERT_ID();
  INSERT INTO mysql.time_zone_name (Name, Time_zone_id) VALUES ('America/Sao_Paulo', @sao_paulo);
  INSERT INTO mysql.time_zone_transition_type (Time_zone_id, Transition_type_id, `Offset`,
    Is_DST, Abbreviation) VALUES (@sao_paulo, 0, -10800, 0, '-03');
END
"""
