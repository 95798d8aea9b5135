"""SQL text as the advisor reads it: tokens, what kind of statement, and column references.

Owns a small tokenizer for SQL and for the expressions PostgreSQL prints in its plans
(``Filter``, ``Hash Cond``, ``Sort Key``): strings, quoted identifiers, dollar quotes,
comments, parameters (``$1``, ``?``, ``?3``, ``:name``), casts. On it: ``read_only``
(whether a statement only reads, so running it under EXPLAIN ANALYZE changes nothing),
``one_statement``, ``param_count``, ``refs`` (the columns an expression compares, and
how: equality, range, other) and ``clauses`` (a query's FROM/JOIN tables with their
aliases and the columns of its WHERE, ON and ORDER BY, for SQLite, which prints no
expressions in its plans). A reading, not a parser: what it finds is checked against the
database's catalog before anything uses it. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>[EeXxBbNn]?'(?:[^']|'')*(?:'|\Z))
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$)
  | (?P<param>\$\d+|\?\d*|:[A-Za-z_][A-Za-z0-9_]*|@[A-Za-z_][A-Za-z0-9_]*)
  | (?P<qident>"(?:[^"]|"")*(?:"|\Z)|`(?:[^`]|``)*(?:`|\Z)|\[[A-Za-z_][^\]]*\])
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)
  | (?P<cast>::)
  | (?P<op><=|>=|<>|!=|==|~~\*?|!~~\*?|[=<>~!|&+\-*/%^#@]+)
  | (?P<punct>[(),.;\[\]{}])
""", re.VERBOSE | re.DOTALL)

READ_STARTS = {"SELECT", "WITH", "VALUES", "TABLE"}
WRITE_WORDS = {"INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "CREATE", "DROP", "ALTER", "TRUNCATE",
               "GRANT", "REVOKE", "COPY", "CALL", "DO", "LOCK", "VACUUM", "REINDEX", "CLUSTER"}
KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "ANY", "ALL", "SOME", "IN", "LIKE", "ILIKE",
            "BETWEEN", "ASC", "DESC", "NULLS", "FIRST", "LAST", "CASE", "WHEN", "THEN", "ELSE", "END",
            "ARRAY", "ROW", "EXISTS", "DISTINCT", "FROM", "AS", "COLLATE", "USING", "ON", "ESCAPE",
            "SELECT", "WHERE", "ORDER", "BY", "GROUP", "HAVING", "LIMIT", "OFFSET", "JOIN", "INNER",
            "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "NATURAL", "UNION", "INTERSECT", "EXCEPT",
            "SUBPLAN", "INITPLAN", "CAST", "INTERVAL", "DATE", "TIMESTAMP", "TIME", "GLOB", "REGEXP",
            "MATCH", "WITH", "RECURSIVE", "VALUES", "LATERAL", "WINDOW", "OVER", "PARTITION", "FILTER",
            "FETCH", "NEXT", "ROWS", "ONLY", "FOR", "UPDATE", "SHARE", "INDEXED", "CURRENT_DATE",
            "CURRENT_TIMESTAMP", "CURRENT_TIME", "LOCALTIMESTAMP", "SIMILAR", "TO", "ISNULL", "NOTNULL"}
TYPE_WORDS = {"VARYING", "PRECISION", "WITH", "WITHOUT", "TIME", "ZONE"}   # ::character varying, ...
EQ_OPS = {"=", "=="}
RANGE_OPS = {"<", ">", "<=", ">=", "~~", "~~*"}
RANGE_WORDS = {"BETWEEN", "LIKE", "GLOB"}
EQ_WORDS = {"IN", "IS", "ISNULL", "NOTNULL"}


@dataclass(frozen=True)
class Token:
    kind: str     # ident | qident | string | number | param | op | cast | punct
    text: str     # as written
    value: str    # identifiers unquoted; keywords and operators as written

    @property
    def word(self) -> str:
        """An unquoted identifier in upper case (a keyword test); "" for anything else."""
        return self.value.upper() if self.kind == "ident" else ""


@dataclass(frozen=True)
class Ref:
    """A column named in an expression: ``qualifier.name`` (qualifier None when bare)."""

    qualifier: str | None
    name: str
    kind: str          # eq | range | other (inside a function call, or no comparison seen)
    descending: bool = False


def _unquote(text: str) -> str:
    if text[0] == '"':
        return text[1:-1].replace('""', '"') if text.endswith('"') and len(text) > 1 else text[1:]
    if text[0] == "`":
        return text[1:-1].replace("``", "`")
    return text[1:-1]     # [name] (SQLite)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, without spaces and comments (an unknown character: an op)."""
    out: list[Token] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            out.append(Token("op", text[pos], text[pos]))
            pos += 1
            continue
        kind = m.lastgroup if m.lastgroup != "tag" else "dollar"
        if m.group("dollar") is not None:
            kind = "dollar"
        piece = m.group(0)
        if kind == "dollar":        # $tag$ ... $tag$: one string
            end = text.find(piece, m.end())
            stop = n if end < 0 else end + len(piece)
            out.append(Token("string", text[pos:stop], text[pos:stop]))
            pos = stop
            continue
        pos = m.end()
        if kind in ("space", "comment"):
            continue
        if kind == "qident":
            out.append(Token("qident", piece, _unquote(piece)))
        else:
            out.append(Token(kind or "op", piece, piece))
    return out


def _strip(tokens: list[Token]) -> list[Token]:
    while tokens and tokens[-1].text == ";":
        tokens = tokens[:-1]
    return tokens


def one_statement(text: str) -> bool:
    """Whether ``text`` holds one statement (a trailing ``;`` allowed)."""
    tokens = _strip(tokenize(text))
    return bool(tokens) and not any(t.text == ";" for t in tokens)


def without_semicolon(text: str) -> str:
    return text.strip().rstrip(";").rstrip()


def read_only(text: str) -> bool:
    """Whether ``text`` is a plain read: SELECT, WITH, VALUES or TABLE, and no word that
    writes (a data-modifying WITH, SELECT ... INTO, a row lock FOR UPDATE)."""
    tokens = _strip(tokenize(text))
    if not tokens or tokens[0].word not in READ_STARTS:
        return False
    return not any(t.word in WRITE_WORDS for t in tokens)


def param_count(text: str) -> int:
    """How many values the statement's placeholders take: the highest ``$n``, or the
    number of ``?`` (``?n`` and ``:name`` counted as SQLite binds them)."""
    highest, plain, named = 0, 0, set()
    for t in tokenize(text):
        if t.kind != "param":
            continue
        if t.text.startswith("$"):
            highest = max(highest, int(t.text[1:]))
        elif t.text == "?":
            plain += 1
        elif t.text.startswith("?"):
            highest = max(highest, int(t.text[1:]))
        else:
            named.add(t.text)
    return max(highest, plain + len(named))


def _name_at(tokens: list[Token], i: int) -> tuple[str | None, str, int] | None:
    """The (qualifier, name, index after) of a column reference starting at ``i``."""
    parts: list[str] = []
    j = i
    while j < len(tokens) and tokens[j].kind in ("ident", "qident"):
        parts.append(tokens[j].value)
        if j + 2 < len(tokens) and tokens[j + 1].text == "." and tokens[j + 2].kind in ("ident", "qident"):
            j += 2
            continue
        j += 1
        break
    if not parts:
        return None
    return (parts[-2] if len(parts) > 1 else None), parts[-1], j


def _skip_casts(tokens: list[Token], j: int) -> int:
    """The index after any ``)`` and ``::type`` (``::character varying``, ``::int[]``) at ``j``."""
    while j < len(tokens):
        t = tokens[j]
        if t.text == ")":
            j += 1
        elif t.kind == "cast":
            j += 1
            first = True
            while j < len(tokens) and tokens[j].kind in ("ident", "qident") and (first or tokens[j].word in TYPE_WORDS):
                first = False
                j += 1
                if j + 1 < len(tokens) and tokens[j].text == "." and tokens[j + 1].kind in ("ident", "qident"):
                    j += 1
                    first = True
            if j + 1 < len(tokens) and tokens[j].text == "[" and tokens[j + 1].text == "]":
                j += 2
            elif j < len(tokens) and tokens[j].text == "(":
                depth = 0
                while j < len(tokens):
                    depth += {"(": 1, ")": -1}.get(tokens[j].text, 0)
                    j += 1
                    if depth == 0:
                        break
        else:
            break
    return j


def _comparison(tokens: list[Token], after: int, before: int) -> str:
    """eq, range or other: the operator after the reference (casts skipped), else before it."""
    j = _skip_casts(tokens, after)
    if j < len(tokens):
        t = tokens[j]
        if t.kind == "op" and t.text in EQ_OPS:
            return "eq"
        if t.kind == "op" and t.text in RANGE_OPS:
            return "range"
        if t.word in EQ_WORDS:
            return "eq"
        if t.word in RANGE_WORDS:
            return "range"
        if t.word == "NOT" and j + 1 < len(tokens) and tokens[j + 1].word in ("IN", "LIKE", "BETWEEN"):
            return "other"
    k = before
    while k >= 0 and tokens[k].text == "(":
        k -= 1
    if k >= 0 and tokens[k].kind == "op":
        if tokens[k].text in EQ_OPS:
            return "eq"
        if tokens[k].text in RANGE_OPS:
            return "range"
    return "other"


def refs(expr: str | list[Token]) -> list[Ref]:
    """The columns ``expr`` names, each once (first reading wins), in order. Names that
    are function names, types after ``::``, keywords (unquoted) or inside a function call
    (``lower(email)``: an index on the column would not serve it) are kind ``other`` or
    left out."""
    tokens = tokenize(expr) if isinstance(expr, str) else expr
    found: dict[tuple[str | None, str], Ref] = {}
    parens: list[bool] = []      # True: a function call's parentheses
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.text == "(":
            prev = tokens[i - 1] if i else None
            parens.append(bool(prev and prev.kind in ("ident", "qident") and prev.word not in KEYWORDS))
            i += 1
            continue
        if t.text == ")":
            if parens:
                parens.pop()
            i += 1
            continue
        if t.kind == "cast":
            i = _skip_casts(tokens, i)
            continue
        if t.kind not in ("ident", "qident") or (t.kind == "ident" and t.word in KEYWORDS):
            i += 1
            continue
        got = _name_at(tokens, i)
        if got is None:
            i += 1
            continue
        qualifier, name, after = got
        if after < len(tokens) and tokens[after].text == "(":     # a function's name
            i = after
            continue
        kind = "other" if any(parens) else _comparison(tokens, after, i - 1)
        desc = after < len(tokens) and tokens[after].word == "DESC"
        key = (qualifier, name)
        if key not in found or (found[key].kind == "other" and kind != "other"):
            found[key] = Ref(qualifier, name, kind, desc)
        i = after
    return list(found.values())


_SECTION_END = {"WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "OFFSET", "UNION", "INTERSECT", "EXCEPT",
                "WINDOW", "FETCH", "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "NATURAL", "ON",
                "USING", "RETURNING", "FOR"}


@dataclass
class Clauses:
    """What a query names: its tables (alias or name, lower case -> table name as
    written), and the columns of its WHERE (filters), ON/USING (joins) and ORDER BY."""

    tables: dict[str, str]
    filters: list[Ref]
    joins: list[Ref]
    order: list[Ref]


def _section(tokens: list[Token], start: int) -> tuple[list[Token], int]:
    """Tokens from ``start`` to the next clause word at the same parenthesis depth."""
    depth, j = 0, start
    while j < len(tokens):
        t = tokens[j]
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and t.word in _SECTION_END:
            break
        j += 1
    return tokens[start:j], j


def _tables(tokens: list[Token], start: int, into: dict[str, str]) -> int:
    """Read ``t [AS] a, s.t2 b`` from ``start``; the index after."""
    j = start
    while j < len(tokens):
        if tokens[j].text == "(":      # a subquery: its own FROM is read on its own
            return j
        got = _name_at(tokens, j)
        if got is None:
            return j
        _, table, j = got
        alias = table
        if j < len(tokens) and tokens[j].word == "AS":
            j += 1
        if j < len(tokens) and tokens[j].kind in ("ident", "qident") and tokens[j].word not in KEYWORDS | _SECTION_END:
            alias = tokens[j].value
            j += 1
        into[alias.lower()] = table
        into.setdefault(table.lower(), table)
        if j < len(tokens) and tokens[j].text == ",":
            j += 1
            continue
        return j
    return j


def clauses(text: str) -> Clauses:
    """The tables and clause columns of ``text`` (module doc); subqueries read in place."""
    tokens = tokenize(text)
    out = Clauses({}, [], [], [])
    i = 0
    while i < len(tokens):
        w = tokens[i].word
        if w in ("FROM", "JOIN"):
            i = _tables(tokens, i + 1, out.tables)
            continue
        if w == "WHERE":
            part, i = _section(tokens, i + 1)
            out.filters.extend(refs(part))
            continue
        if w == "ON":
            part, i = _section(tokens, i + 1)
            out.joins.extend(refs(part))
            continue
        if w == "USING" and i + 1 < len(tokens) and tokens[i + 1].text == "(":
            part, i = _section(tokens, i + 2)
            out.joins.extend(Ref(None, r.name, "eq") for r in refs(part))
            continue
        if w == "ORDER" and i + 1 < len(tokens) and tokens[i + 1].word == "BY":
            part, i = _section(tokens, i + 2)
            out.order.extend(refs(part))
            continue
        i += 1
    return out


def shorten(text: str, limit: int = 80) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
