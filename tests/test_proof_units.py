"""The proof's comparisons where the target differs from the source by design: Flexible
Server's lower_case_table_names=1 and MySQL 8's generated invisible primary keys. There is
no MySQL 8 server here; the GIPK text is MySQL 8.0.30+'s SHOW CREATE TABLE as its manual
("Generated Invisible Primary Keys") shows it."""

from __future__ import annotations

from drkit.mysql.proof import _FoldedNames, _without_added_gipk


class _Manifest:
    tables = {"shop.AuditLog": None, "shop.orders": None}
    objects = {"views": ["shop.Totals"], "triggers": ["shop.Round_Amount"]}


def test_names_fold_only_under_lower_case_table_names():
    folded, kept = _FoldedNames(_Manifest(), True), _FoldedNames(_Manifest(), False)
    assert folded.table("Shop.AuditLog") == "shop.auditlog"
    assert kept.table("Shop.AuditLog") == "Shop.AuditLog"
    assert folded.object("views", "Shop.Totals") == "shop.totals"
    assert folded.object("triggers", "Shop.Round_Amount") == "shop.Round_Amount"
    assert folded.definition_key("table", "shop.AuditLog") == "table shop.auditlog"
    text = "CREATE TABLE `AuditLog` (\n  `AuditLog` int,\n  `Note` text\n) REFERENCES `Orders`"
    assert folded.text(text) == ("CREATE TABLE `auditlog` (\n  `auditlog` int,\n  `Note` text"
                                 "\n) REFERENCES `orders`")
    assert kept.text(text) == text


def test_an_invisible_key_the_target_generated_is_not_a_difference():
    expected = {"table shop.k": "CREATE TABLE `k` (\n  `a` int DEFAULT NULL,\n  `b` text\n)"
                                " ENGINE=InnoDB"}
    actual = {"table shop.k": "CREATE TABLE `k` (\n  `my_row_id` bigint unsigned NOT NULL "
                              "AUTO_INCREMENT /*!80023 INVISIBLE */,\n  `a` int DEFAULT NULL,"
                              "\n  `b` text,\n  PRIMARY KEY (`my_row_id`)\n) ENGINE=InnoDB"}
    assert _without_added_gipk(expected, actual)[1] == expected
    # a backup whose table had the key keeps it in the comparison
    assert _without_added_gipk(actual, actual)[1] == actual


def test_qualified_names_in_replayed_ddl_are_renamed_outside_strings_and_comments():
    from drkit.binlog.qualifiers import rename_qualified

    renames = {"shop": "pit"}
    assert rename_qualified(b"ALTER TABLE `shop`.`t` ADD c INT DEFAULT 'shop.x'", renames) \
        == b"ALTER TABLE `pit`.`t` ADD c INT DEFAULT 'shop.x'"
    assert rename_qualified(b"RENAME TABLE shop.a TO shop . b", renames) == \
        b"RENAME TABLE `pit`.a TO `pit` . b"
    assert rename_qualified(b"/* shop.x */ DROP TABLE myshop.t, shop.t -- shop.y\n",
                            renames) == b"/* shop.x */ DROP TABLE myshop.t, `pit`.t -- shop.y\n"
    assert rename_qualified(b'SELECT "shop.z", 1.5, `sh``op`.t', {"sh`op": "x"}) == \
        b'SELECT "shop.z", 1.5, `x`.t'


def test_qualifiers_under_the_statements_sql_mode():
    """ANSI_QUOTES makes "shop" a name, NO_BACKSLASH_ESCAPES ends a string at its quote, and
    the code of an executable comment (/*!50100 ... */) runs, so its qualifiers count."""
    from drkit.binlog.qualifiers import rename_qualified

    renames = {"shop": "pit"}
    seen: set[str] = set()
    assert rename_qualified(b'ALTER TABLE "shop"."t" ADD c INT DEFAULT 1', renames, seen,
                            ansi_quotes=True) == b'ALTER TABLE `pit`."t" ADD c INT DEFAULT 1'
    assert seen == {"shop"}
    assert rename_qualified(b"SELECT 'a\\' , shop.t", renames, backslash_escapes=False) == \
        b"SELECT 'a\\' , `pit`.t"
    assert rename_qualified(b"/*!50100 DROP TABLE shop.t */ /* shop.x */", renames) == \
        b"/*!50100 DROP TABLE `pit`.t */ /* shop.x */"
    assert rename_qualified(b"DROP TABLE `shop", renames) == b"DROP TABLE `shop"
