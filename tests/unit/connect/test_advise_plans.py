"""The advisor's pure parts: walking EXPLAIN JSON, candidate indexes, selectivity order,
generated names and DDL, existing-index judgements, and reading SQL text."""

from __future__ import annotations

import json

import pytest

from rayflow.connect.advise import plans
from rayflow.connect.advise.indexes import IndexInfo, duplicates, unused
from rayflow.connect.advise.plans import ColumnStats, TableInfo
from rayflow.connect.advise.results import QueryReport, Recommendation, Verification
from rayflow.connect.advise.sqltext import clauses, one_statement, param_count, read_only, refs

ORDERS_COLS = ("id", "customer_id", "day", "amount", "status")


def orders(reltuples: float = 1_000_000, **kw) -> TableInfo:
    stats = {"id": ColumnStats(0.0, -1.0), "customer_id": ColumnStats(0.0, 50_000.0),
             "day": ColumnStats(0.0, 365.0), "amount": ColumnStats(0.0, 1000.0),
             "status": ColumnStats(0.0, 5.0)}
    return TableInfo("shop", "orders", reltuples, ORDERS_COLS, stats, **kw)


def customers() -> TableInfo:
    return TableInfo("shop", "customers", 100.0, ("id", "name", "region"), {})


def scan(relation: str, alias: str | None = None, filt: str | None = None, rows: float = 1000.0, **kw) -> dict:
    node = {"Node Type": "Seq Scan", "Relation Name": relation, "Schema": "shop", "Alias": alias or relation,
            "Startup Cost": 0.0, "Total Cost": 15000.0, "Plan Rows": rows, "Plan Width": 20, **kw}
    if filt is not None:
        node["Filter"] = filt
    return node


def explain(plan: dict, **top) -> str:
    return json.dumps([{"Plan": plan, **top}])


def tables(*infos: TableInfo) -> dict:
    return {(i.schema, i.name): i for i in infos}


# -- walking plans -------------------------------------------------------------------------

def test_seq_scan_with_filter_under_gather():
    doc = explain({"Node Type": "Gather", "Total Cost": 11_614.0, "Plan Rows": 20, "Plans": [
        scan("orders", filt="(orders.customer_id = 42)", rows=8, **{"Parallel Aware": True})]},
        **{"Execution Time": 31.5})
    facts = plans.facts(doc)
    assert facts.cost == 11_614.0 and facts.execution_ms == 31.5
    assert [(s.relation, s.filter, s.parallel) for s in facts.scans] == [("orders", "(orders.customer_id = 42)", True)]
    assert facts.paths == ["Parallel Seq Scan on orders"]
    found, notes = plans.candidates(facts, tables(orders()), 10_000)
    assert [(c.table, c.columns, c.reason) for c in found] == [("orders", ("customer_id",), "filter")]
    assert notes == []
    assert found[0].ddl() == ('CREATE INDEX "rayflow_advise_orders_customer_id" ON "shop"."orders" '
                              '("customer_id")')


def test_hash_join_recommends_the_large_side_join_column():
    doc = explain({"Node Type": "Hash Join", "Total Cost": 40_000.0, "Plan Rows": 1_000_000,
                   "Hash Cond": "(o.customer_id = c.id)", "Plans": [
                       scan("orders", "o", rows=1_000_000),
                       {"Node Type": "Hash", "Plans": [scan("customers", "c", rows=100)]}]})
    facts = plans.facts(doc)
    assert {r.name for r in facts.join_refs} == {"customer_id", "id"}
    assert facts.relations == {"o": ("shop", "orders"), "c": ("shop", "customers")}
    found, _ = plans.candidates(facts, tables(orders(), customers()), 10_000)
    assert [(c.table, c.columns, c.reason) for c in found] == [("orders", ("customer_id",), "join")]


def test_nested_loop_filter_naming_the_outer_table_is_a_join():
    doc = explain({"Node Type": "Nested Loop", "Total Cost": 9e6, "Plan Rows": 10, "Plans": [
        scan("customers", "c", filt="(c.region = 'north'::text)", rows=5),
        scan("orders", "o", filt="(o.customer_id = c.id)", rows=20)]})
    found, _ = plans.candidates(plans.facts(doc), tables(orders(), customers()), 10_000)
    assert [(c.table, c.columns) for c in found] == [("orders", ("customer_id",))]


def test_sort_under_a_limit_recommends_the_sort_key():
    doc = explain({"Node Type": "Limit", "Total Cost": 30_000.0, "Plan Rows": 10, "Plans": [
        {"Node Type": "Sort", "Sort Key": ["o.day DESC", "o.amount DESC"], "Plans": [
            scan("orders", "o", rows=1_000_000)]}]})
    facts = plans.facts(doc)
    assert facts.limited and [(r.name, r.descending) for r in facts.sort_refs] == [("day", True), ("amount", True)]
    found, _ = plans.candidates(facts, tables(orders()), 10_000)
    assert [(c.columns, c.reason, c.descending) for c in found] == [(("day", "amount"), "sort", ())]


def test_mixed_sort_directions_keep_desc_in_the_ddl():
    doc = explain({"Node Type": "Limit", "Plans": [{"Node Type": "Sort", "Sort Key": ["amount DESC", "day"],
                                                    "Plans": [scan("orders", rows=1_000_000)]}]})
    found, _ = plans.candidates(plans.facts(doc), tables(orders()), 10_000)
    assert found[0].ddl().endswith('("amount" DESC, "day")')


def test_a_sort_without_limit_is_no_candidate():
    doc = explain({"Node Type": "Sort", "Sort Key": ["day"], "Plans": [scan("orders", rows=1_000_000)]})
    assert plans.candidates(plans.facts(doc), tables(orders()), 10_000)[0] == []


def test_nested_plans_are_all_walked():
    deep = scan("orders", "o2", filt="(o2.status = 'void'::text)", rows=10)
    doc = explain({"Node Type": "Result", "Plans": [
        {"Node Type": "Aggregate", "Parent Relationship": "InitPlan", "Plans": [
            {"Node Type": "Subquery Scan", "Plans": [{"Node Type": "Materialize", "Plans": [deep]}]}]},
        {"Node Type": "Index Scan", "Relation Name": "customers", "Schema": "shop", "Alias": "c",
         "Index Name": "customers_pkey", "Parent Relationship": "SubPlan"},
        {"Node Type": "Bitmap Heap Scan", "Relation Name": "orders", "Schema": "shop", "Alias": "o", "Plans": [
            {"Node Type": "Bitmap Index Scan", "Index Name": "orders_day"}]}]})
    facts = plans.facts(doc)
    assert [s.alias for s in facts.scans] == ["o2"]
    assert facts.paths == ["Seq Scan on orders", "Index Scan using customers_pkey on customers",
                           "Bitmap Heap Scan on orders", "Bitmap Index Scan using orders_day"]
    found, _ = plans.candidates(facts, tables(orders(), customers()), 10_000)
    assert [c.columns for c in found] == [("status",)]


def test_deep_plans_do_not_recurse():
    node = scan("orders", filt="(customer_id = 1)")
    for _ in range(5000):
        node = {"Node Type": "Materialize", "Plans": [node]}
    assert len(plans.facts([{"Plan": node}]).scans) == 1


def test_small_tables_and_existing_indexes_give_no_candidate():
    doc = explain(scan("orders", filt="(orders.customer_id = 42)", rows=3))
    assert plans.candidates(plans.facts(doc), tables(orders(reltuples=500)), 10_000) == ([], [])
    found, notes = plans.candidates(plans.facts(doc), tables(orders(indexed=[("customer_id", "day")])), 10_000)
    assert found == [] and "exists" in notes[0]


def test_never_analyzed_table_falls_back_to_plan_rows():
    doc = explain(scan("orders", filt="(customer_id = 42)", rows=50_000))
    found, _ = plans.candidates(plans.facts(doc), tables(orders(reltuples=-1)), 10_000)
    assert found[0].rows == 50_000


def test_function_wrapped_columns_are_left_out():
    doc = explain(scan("orders", filt="(lower(status) = 'paid'::text)", rows=1_000_000))
    assert plans.candidates(plans.facts(doc), tables(orders()), 10_000)[0] == []


def test_names_the_plan_prints_must_be_catalog_columns():
    doc = explain(scan("orders", filt="((orders.nosuch = 1) AND (orders.\"Evil\"\"); DROP\" = 2))", rows=10**6))
    assert plans.candidates(plans.facts(doc), tables(orders()), 10_000)[0] == []


def test_not_explain_output_is_refused():
    with pytest.raises(ValueError):
        plans.load([{"nothing": 1}])


# -- selectivity -----------------------------------------------------------------------------

def test_selectivity_order_equality_first_then_range():
    filt = ("((orders.status = 'paid'::text) AND (orders.day > '2024-01-01'::date) "
            "AND (orders.customer_id = 42))")
    found, _ = plans.candidates(plans.facts(explain(scan("orders", filt=filt, rows=4))), tables(orders()), 10_000)
    assert found[0].columns == ("customer_id", "status", "day")
    assert found[0].name == "rayflow_advise_orders_customer_id_status_day"


def test_selectivity_uses_negative_n_distinct_and_null_frac():
    stats = {"a": ColumnStats(0.0, 100.0),        # 1% of the rows per value
             "b": ColumnStats(0.0, -0.5),         # half as many values as rows: 2 rows per value
             "c": ColumnStats(0.99, 10.0),        # mostly null: 0.1% per value
             "d": ColumnStats(0.0, 0.0)}          # unknown
    assert plans.by_selectivity(["d", "a", "c", "b"], stats, 1_000_000) == ["b", "c", "a", "d"]
    assert plans.eq_fraction(None, 10) == 1.0
    assert plans.by_selectivity(["x", "y"], {}, 10) == ["x", "y"]   # ties keep their order


def test_composite_keeps_the_three_most_selective():
    found = refs("(a = 1) AND (b = 2) AND (c = 3) AND (d = 4)")
    stats = {k: ColumnStats(0.0, float(n)) for k, n in zip("abcd", (10, 1000, 100, 10_000), strict=True)}
    assert plans.index_columns(found, stats, 10**6) == ["d", "b", "c"]


# -- names and DDL ---------------------------------------------------------------------------

def test_index_names_fit_63_bytes_and_stay_apart():
    a = plans.index_name("a_very_long_table_name_for_orders", ("customer_identifier", "created_at_ts"))
    b = plans.index_name("a_very_long_table_name_for_orders", ("customer_identifier", "created_at_tz"))
    assert len(a.encode()) <= 63 and len(b.encode()) <= 63 and a != b
    wide = plans.index_name("tåble", ("ćolumn",) * 12)
    assert len(wide.encode()) <= 63
    wide.encode().decode("utf-8")   # not cut inside a character


def test_identifiers_are_quoted():
    assert plans.quote_ident('we"ird') == '"we""ird"'
    ddl = plans.create_index_sql("my schema", 'or"ders', ["Cust Id"], "ix")
    assert ddl == 'CREATE INDEX "ix" ON "my schema"."or""ders" ("Cust Id")'
    assert plans.create_index_sql(None, "t", ["a"], "ix") == 'CREATE INDEX "ix" ON "t" ("a")'
    with pytest.raises(ValueError):
        plans.quote_ident("")


# -- existing indexes --------------------------------------------------------------------------

def ix(name: str, *cols: str, **kw) -> IndexInfo:
    return IndexInfo("shop", "orders", name, cols, **kw)


def test_prefix_and_identical_duplicates():
    found = duplicates([ix("orders_pkey", "id", primary=True, unique=True, constraint=True),
                        ix("orders_day", "day"), ix("orders_day_amount", "day", "amount"),
                        ix("orders_id_copy", "id"), ix("s1", "status"), ix("s2", "status"),
                        ix("day_partial", "day", predicate="(amount > 0)"),
                        ix("day_hash", "day", method="hash")])
    got = {(d.index, d.covered_by, d.identical) for d in found}
    assert got == {("orders_day", "orders_day_amount", False), ("orders_id_copy", "orders_pkey", True),
                   ("s2", "s1", True)}


def test_unique_indexes_are_kept_unless_identical():
    found = duplicates([ix("u_day", "day", unique=True), ix("day_amount", "day", "amount"),
                        ix("u_day2", "day", unique=True, constraint=True)])
    assert [(d.index, d.covered_by) for d in found] == [("u_day", "u_day2")]


def test_unused_skips_what_enforces_something():
    found = unused([ix("a", "x", scans=0), ix("b", "y", scans=3), ix("c", "z", scans=0, unique=True),
                    ix("d", "id", scans=0, primary=True), ix("e", "w", scans=0, constraint=True),
                    ix("f", "v", scans=None)])
    assert [i.name for i in found] == ["a"]


# -- SQL text ----------------------------------------------------------------------------------

def test_read_only_and_one_statement():
    assert read_only("SELECT * FROM t WHERE a = $1;")
    assert read_only("with x as (select 1) select * from x")
    assert not read_only("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")
    assert not read_only("SELECT * INTO t2 FROM t")
    assert not read_only("UPDATE t SET a = 1")
    assert read_only("SELECT 'DELETE' AS word, \"update\" FROM t")
    assert one_statement("SELECT 1;") and not one_statement("SELECT 1; DROP TABLE t")
    assert one_statement("SELECT ';' -- ;\n")


def test_param_count():
    assert param_count("SELECT * FROM t WHERE a = $1 AND b = $3") == 3
    assert param_count("SELECT * FROM t WHERE a = ? AND b = ? AND c = '?'") == 2
    assert param_count("SELECT '$1'") == 0


def test_refs_kinds():
    got = refs("(((o.status)::text = 'x'::text) AND (o.day >= '2024-01-01'::date) "
               "AND (customer_id = ANY ('{1,2}'::integer[])) AND (lower(email) ~~ 'a%'::text))")
    assert [(r.qualifier, r.name, r.kind) for r in got] == [
        ("o", "status", "eq"), ("o", "day", "range"), (None, "customer_id", "eq"), (None, "email", "other")]


def test_clauses_of_a_query():
    cl = clauses("SELECT e.id FROM events AS e JOIN users u ON u.id = e.user_id "
                 "WHERE e.kind = ? AND e.at > ? ORDER BY e.at DESC LIMIT 5")
    assert cl.tables["e"] == "events" and cl.tables["u"] == "users"
    assert [(r.qualifier, r.name, r.kind) for r in cl.filters] == [("e", "kind", "eq"), ("e", "at", "range")]
    assert {r.name for r in cl.joins} == {"id", "user_id"}
    assert [(r.name, r.descending) for r in cl.order] == [("at", True)]


# -- results -------------------------------------------------------------------------------------

def test_settle_keeps_what_helps():
    good = Verification("transaction", cost_before=100.0, cost_after=5.0, time_before_ms=30.0, time_after_ms=0.5,
                        uses_index=True)
    ignored = Verification("hypopg", cost_before=100.0, cost_after=100.0, uses_index=False)
    rep = QueryReport("q", "db", "postgresql", "SELECT 1", status="advice", recommendations=[
        Recommendation("t", ["a"], "filter", "ix_a", "CREATE INDEX ...", verification=good),
        Recommendation("t", ["b"], "join", "ix_b", "CREATE INDEX ...", verification=ignored)])
    rep.settle()
    assert [r.index_name for r in rep.recommendations] == ["ix_a"] and rep.status == "advice"
    assert [r.index_name for r in rep.rejected] == ["ix_b"] and "does not use it" in rep.notes[0]
    assert good.speedup == 60.0 and good.to_dict()["speedup"] == 60.0 and good.helps
