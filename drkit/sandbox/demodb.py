"""The sandbox's demo database, built to catch dump and restore bugs.

It holds what breaks naive tools: utf8mb4 text (Korean, emoji), quotes and backslashes,
NULLs, binary blobs containing 0x00, decimals and microsecond datetimes, a table without a
primary key, and every kind of stored object (view, trigger, procedure, function, event).
Rows are generated server-side from MariaDB's SEQUENCE engine, so 1 GiB builds in about a
minute.
"""

from __future__ import annotations

import pymysql

DEFAULT_SIZE = 4 * 1024 * 1024

# Approximate bytes of dump SQL per row, and each table's share of the requested size.
_TABLES = {
    "customers": (137, 0.15),
    "orders": (76, 0.45),
    "attachments": (1120, 0.20),
    "AuditLog": (75, 0.20),
}
_CHUNK_ROWS = 500_000

_SCHEMA = [
    """CREATE TABLE customers (
        id INT UNSIGNED NOT NULL PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        email VARCHAR(190) NOT NULL UNIQUE,
        city VARCHAR(60) NULL,
        balance DECIMAL(12,2) NOT NULL DEFAULT 0,
        born_on DATE NULL,
        created_at DATETIME NOT NULL,
        note TEXT NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE products (
        id SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
        sku CHAR(12) NOT NULL,
        title VARCHAR(200) NOT NULL,
        price DECIMAL(10,2) NOT NULL,
        weight_kg DECIMAL(8,3) NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE orders (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        customer_id INT UNSIGNED NOT NULL,
        product_id SMALLINT UNSIGNED NOT NULL,
        quantity SMALLINT NOT NULL,
        amount DECIMAL(12,2) NOT NULL,
        status ENUM('new','paid','shipped','cancelled') NOT NULL,
        ordered_at DATETIME(6) NOT NULL,
        shipped_on DATE NULL,
        KEY ix_orders_customer (customer_id)
    ) ENGINE=InnoDB""",
    """CREATE TABLE attachments (
        id INT UNSIGNED NOT NULL PRIMARY KEY,
        order_id BIGINT UNSIGNED NOT NULL,
        filename VARCHAR(255) NOT NULL,
        content MEDIUMBLOB NOT NULL,
        checksum BINARY(20) NOT NULL
    ) ENGINE=InnoDB""",
    # No primary key on purpose, and every row twice: restores must keep duplicates.
    """CREATE TABLE AuditLog (
        logged_at DATETIME(6) NOT NULL,
        actor VARCHAR(64) NULL,
        message TEXT NOT NULL
    ) ENGINE=InnoDB""",
]

_WORDS = "'김민준','이서연','박지호','😀 smile','Zoë','O''Brien','back\\\\slash','tab\\tquote\"'"
_CITIES = "'서울','부산','Seattle','São Paulo',NULL,'Zürich','🏙️ Metro'"

_FILL = {
    "customers": f"""INSERT INTO customers
        SELECT seq, CONCAT(ELT(1 + seq % 8, {_WORDS}), ' #', seq),
               CONCAT('user', seq, '@example.com'),
               ELT(1 + seq % 7, {_CITIES}),
               ROUND((seq * 7919 % 1000000) / 100, 2),
               IF(seq % 5 = 0, NULL, DATE('1950-01-01') + INTERVAL (seq * 37 % 20000) DAY),
               TIMESTAMP('2020-01-01') + INTERVAL (seq * 61 % 157680000) SECOND,
               IF(seq % 3 = 0, NULL, CONCAT('note ', seq, ': it''s "quoted" \\\\ 한글 ✓'))
        FROM seq_{{lo}}_to_{{hi}}""",
    "orders": """INSERT INTO orders
        SELECT seq, 1 + seq % {customers}, 1 + seq % 200, 1 + seq % 9,
               ROUND((seq * 104729 % 5000000) / 100, 2),
               ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
               TIMESTAMP('2021-01-01') + INTERVAL (seq * 7 % 126144000) SECOND
                   + INTERVAL (seq % 1000000) MICROSECOND,
               IF(seq % 4 = 2, DATE('2021-01-01') + INTERVAL (seq % 1400) DAY, NULL)
        FROM seq_{lo}_to_{hi}""",
    # Blobs: a 0x00 byte, a 0x1A (^Z), CR/LF, quote and backslash bytes, then hash bytes.
    "attachments": """INSERT INTO attachments
        SELECT seq, 1 + seq % {orders}, CONCAT('scan-', seq, IF(seq % 2, '.pdf', '.png')),
               CONCAT(0x00FF1A0D0A27225C00, REPEAT(UNHEX(SHA2(seq, 512)), 8)),
               UNHEX(SHA1(seq))
        FROM seq_{lo}_to_{hi}""",
    "AuditLog": """INSERT INTO AuditLog
        SELECT TIMESTAMP('2022-01-01') + INTERVAL (seq DIV 2) SECOND,
               IF(seq DIV 2 % 6 = 0, NULL, ELT(1 + seq DIV 2 % 3, 'system', 'ops', '운영자')),
               CONCAT('event ', seq DIV 2, ' ', REPEAT('x', seq DIV 2 % 40))
        FROM seq_{lo}_to_{hi}""",
}

_OBJECTS = [
    """CREATE VIEW customer_order_totals AS
        SELECT c.id, c.name, COUNT(o.id) AS orders, COALESCE(SUM(o.amount), 0) AS total
        FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
        GROUP BY c.id, c.name""",
    """CREATE TRIGGER orders_round_amount BEFORE INSERT ON orders FOR EACH ROW
        SET NEW.amount = ROUND(NEW.amount, 2)""",
    """CREATE PROCEDURE place_order(IN p_customer INT, IN p_product INT, IN p_quantity INT)
        MODIFIES SQL DATA
        INSERT INTO orders (id, customer_id, product_id, quantity, amount, status, ordered_at)
        SELECT COALESCE(MAX(id), 0) + 1, p_customer, p_product, p_quantity,
               p_quantity * (SELECT price FROM products WHERE id = p_product), 'new', NOW(6)
        FROM orders""",
    """CREATE FUNCTION customer_total(p_customer INT) RETURNS DECIMAL(14,2)
        READS SQL DATA
        RETURN (SELECT COALESCE(SUM(amount), 0) FROM orders WHERE customer_id = p_customer)""",
    """CREATE EVENT purge_AuditLog ON SCHEDULE EVERY 1 DAY DISABLE
        DO DELETE FROM AuditLog WHERE logged_at < NOW() - INTERVAL 365 DAY""",
]


def row_counts(size_bytes: int) -> dict[str, int]:
    return {
        table: max(10, int(size_bytes * share / row_bytes))
        for table, (row_bytes, share) in _TABLES.items()
    }


def build(connection: pymysql.Connection, database: str = "shop",
          size_bytes: int = DEFAULT_SIZE) -> dict[str, int]:
    """Create ``database`` (replacing it) and fill it to about ``size_bytes`` of dump SQL."""
    counts = row_counts(size_bytes)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cursor.execute(
            f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        cursor.execute(f"USE `{database}`")
        for statement in _SCHEMA:
            cursor.execute(statement)
        cursor.execute(
            f"""INSERT INTO products
                SELECT seq, CONCAT('SKU-', LPAD(seq, 8, '0')),
                       CONCAT(ELT(1 + seq % 8, {_WORDS}), ' product ', seq),
                       ROUND(1 + seq * 3.17, 2), IF(seq % 10 = 0, NULL, seq / 7)
                FROM seq_1_to_200"""
        )
        for table, total in counts.items():
            for lo in range(1, total + 1, _CHUNK_ROWS):
                hi = min(total, lo + _CHUNK_ROWS - 1)
                cursor.execute(_FILL[table].format(lo=lo, hi=hi, **counts))
        # Objects keep the time zone they were made in; a named one needs the target's
        # time-zone tables (Flexible Server: empty until mysql.az_load_timezone()).
        cursor.execute("SET time_zone = 'Asia/Seoul'")
        for statement in _OBJECTS:
            cursor.execute(statement)
        cursor.execute("SET time_zone = SYSTEM")
    counts["products"] = 200
    return counts
