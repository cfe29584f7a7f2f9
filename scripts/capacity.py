#!/usr/bin/env python3
"""Capacity on paper: what N users writing M messages a day need from Cosmos DB.

Request units per operation come from the RU model that `cargo bench --bench cosmos_requests`
measures (docs/cosmos.md: the per-length and seal-policy tables) and, where a figure depends on a
size the benches did not measure (a session of another length, a user's whole history), from the
same published RU-by-size table the bench uses (benches/cosmos_requests/model.rs), applied to the
sizes the bench reports. Everything else is an assumption, named in ASSUMPTIONS and printed.

    python3 scripts/capacity.py                  # the tables, as Markdown, on stdout
    python3 scripts/capacity.py --messages 50    # another M (see --help for every knob)
    python3 scripts/capacity.py --write docs/capacity.md   # refresh the doc's generated part
    python3 scripts/capacity.py --check docs/capacity.md   # fail if the doc is out of date

No dependencies beyond the Python standard library.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

# --- The published RU-by-size table (session consistency), as in model.rs -------------------

READ = [(1.0, 1.00), (32.0, 2.19), (64.0, 4.76), (128.0, 9.95), (256.0, 20.28), (512.0, 40.95)]
WRITE = [
    (1.0, 4.95), (2.0, 6.29), (4.0, 6.67), (8.0, 7.04), (16.0, 9.52), (32.0, 11.23),
    (64.0, 22.67), (128.0, 48.19), (256.0, 98.29), (512.0, 184.57), (1024.0, 625.0),
]
MAX_ITEM_BYTES = 2 * 1024 * 1024


def interpolate(table: list[tuple[float, float]], nbytes: float) -> float:
    """Linear between the published sizes, along the last segment beyond the largest (model.rs)."""
    kb = nbytes / 1024.0
    if kb <= table[0][0]:
        return table[0][1]
    for (x0, y0), (x1, y1) in zip(table, table[1:]):
        if kb <= x1:
            return y0 + (kb - x0) * (y1 - y0) / (x1 - x0)
    (x0, y0), (x1, y1) = table[-2], table[-1]
    return y0 + (kb - x0) * (y1 - y0) / (x1 - x0)


def read_ru(nbytes: float) -> float:
    return interpolate(READ, nbytes)


def write_ru(nbytes: float) -> float:
    return interpolate(WRITE, nbytes)


# --- Sizes and measured figures (docs/cosmos.md) ---------------------------------------------

# A typical message (~600 bytes with its id, type, user, metadata and timestamp) takes 602 bytes
# of a session document with its separator; a session document's own fields (and Cosmos DB's
# system properties) about 400 bytes. Derived from the bench's "Append: rewrite" column, which is
# write_ru(400 + 602 n): 6.88 RU at 10 messages, 10.99 at 50, 44.19 at 200, 250.19 at 1,000
# (checked in self_check()).
MESSAGE_BYTES = 602
SESSION_BYTES = 400
# The old model's document per message: about 820 bytes (docs/cosmos.md), one insert of 4.95 RU.
OLD_DOC_BYTES = 820
# Default seal policy: a 32 KiB document, 30 KiB pages.
SEAL_MAX_BYTES = 32 * 1024
SEAL_PAGE_BYTES = 30 * 1024
# Messages a session document holds before its first seal, and per sealed page.
FIRST_SEAL_AT = (SEAL_MAX_BYTES - SESSION_BYTES) // MESSAGE_BYTES  # 53
PAGE_MESSAGES = SEAL_PAGE_BYTES // MESSAGE_BYTES  # 51

# Measured by `cosmos_requests` (docs/cosmos.md), RU by the published table:
APPEND_STEADY_RU = 9.47  # seal-policy table, 32 KiB / 30 KiB: "Append RU, steady", seals included
TAIL50_SEALED_RU = 4.16  # per-length table: "Tail 50 RU" at 200 messages (3.80 at 1,000)
CREATE_RU = 4.95  # API table: POST /api/chat/sessions
LIST_RU = 1.06  # API table: GET /api/chat/sessions (10 sessions; a query charged by its bytes)
FULL_READ_RU = [(10, 1.21), (50, 2.10), (200, 8.40), (1000, 41.99), (10000, 416.92)]
# The table has no figures for queries: the bench charges a query as a point read of the bytes
# it returns, a lower bound. "A real query costs at least 2-3 RU" (docs/cosmos.md): this floor.
QUERY_FLOOR_RU = 2.5
EXPORT_PAGE_SESSIONS = 100  # export lists session documents 100 per query page


def query_ru(nbytes: float) -> float:
    return max(QUERY_FLOOR_RU, read_ru(nbytes))


def full_read_ru(messages: int) -> float:
    """A full read of a session by the per-length table, linear between its lengths."""
    points = FULL_READ_RU
    if messages <= points[0][0]:
        return points[0][1] * messages / points[0][0] if messages else 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if messages <= x1:
            return y0 + (messages - x0) * (y1 - y0) / (x1 - x0)
    (x0, y0), (x1, y1) = points[-2], points[-1]
    return y0 + (messages - x0) * (y1 - y0) / (x1 - x0)


# --- Prices and limits ------------------------------------------------------------------------

PRICES_AS_OF = "mid-2025"
PRICE_SERVERLESS_PER_MILLION_RU = 0.25  # USD per 1,000,000 RU consumed
PRICE_MANUAL_PER_100_RUS_HOUR = 0.008  # USD per 100 RU/s per hour, single-region write
PRICE_AUTOSCALE_PER_100_RUS_HOUR = 0.012  # USD per 100 RU/s per hour (highest in the hour)
PRICE_STORAGE_PER_GB_MONTH = 0.25  # USD per GB per month, transactional storage (data + index)
HOURS_PER_MONTH = 730
DAYS_PER_MONTH = 365 / 12
GB = 1e9

SERVERLESS_MAX_STORAGE_GB = 1000  # 1 TB per container
SERVERLESS_BASE_RUS = 5000  # per container up to 250 GB (more with more physical partitions)
MANUAL_MIN_RUS = 400
MANUAL_RUS_PER_GB = 1  # provisioned minimum: 1 RU/s per GB stored
AUTOSCALE_MIN_MAX_RUS = 1000
AUTOSCALE_MAX_RUS_PER_GB = 10  # autoscale maximum at least 10 x GB stored (its 10% floor: 1/GB)


# --- The workload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    users: int = 1000
    messages_per_day: float = 20.0  # per user, user and assistant messages together
    # Sessions by length: (share of sessions, messages in each).
    session_mix: tuple[tuple[float, int], ...] = ((0.95, 20), (0.05, 300))
    reads_per_message: float = 0.5  # reads of a session's newest 50 messages, per message written
    lists_per_day: float = 3.0  # GET /api/chat/sessions, first page, per user
    searches_per_day: float = 1.0
    search_scan_share: float = 0.5  # share of the user's history one search reads, on average
    exports_per_month: float = 1.0  # GET /api/chat/export (everything of the user)
    history_days: int = 365  # history kept (no retention): storage, search and export grow with it
    cache_miss_share: float = 0.25  # appends whose instance lacks the session's version: +1 read
    peak_factor: float = 3.0  # busiest hour's RU/s over the day's mean (a day's load in 8 hours)
    index_overhead: float = 0.05  # index size over data, sessions container (/messages/* excluded)
    old_index_overhead: float = 0.25  # the old per-message documents (/content/?, /metadata/* excluded)

    @property
    def mean_session_messages(self) -> float:
        return sum(share * n for share, n in self.session_mix)

    @property
    def sessions_per_day(self) -> float:
        return self.messages_per_day / self.mean_session_messages


@dataclass
class PerUserDay:
    """Request units one user's day costs, by operation, and the bytes a user keeps."""

    model: str
    ru: dict[str, float] = field(default_factory=dict)
    stored_bytes: float = 0.0  # data, without the index
    index_overhead: float = 0.0
    feasible: bool = True
    note: str = ""

    @property
    def total(self) -> float:
        return sum(self.ru.values())


def pages_of(messages: int) -> int:
    """Sealed pages of a session of `messages` typical messages under the default policy."""
    if messages <= FIRST_SEAL_AT:
        return 0
    return 1 + (messages - FIRST_SEAL_AT - 1) // PAGE_MESSAGES


def session_doc_bytes(messages: int) -> int:
    return SESSION_BYTES + MESSAGE_BYTES * messages


def this_design(w: Workload) -> PerUserDay:
    out = PerUserDay("this design (sessions, sealed 32 KiB pages)", index_overhead=w.index_overhead)
    appends = reads = misses = creates = 0.0
    stored = 0.0
    export = 0.0
    history_sessions = w.sessions_per_day * w.history_days
    for share, n in w.session_mix:
        sessions = w.sessions_per_day * share
        # Append i writes the whole document (a patch is charged by the item's size) until the
        # first seal; after it, the measured steady mean, seals included.
        append = sum(write_ru(session_doc_bytes(i)) for i in range(1, min(n, FIRST_SEAL_AT) + 1))
        append += max(0, n - FIRST_SEAL_AT) * APPEND_STEADY_RU
        # The newest 50 messages after message i: the document alone, then document + newest page.
        tail = sum(
            read_ru(session_doc_bytes(i)) if i <= FIRST_SEAL_AT else TAIL50_SEALED_RU
            for i in range(1, n + 1)
        )
        appends += sessions * append
        reads += sessions * w.reads_per_message * tail
        misses += sessions * w.cache_miss_share * tail
        creates += sessions * CREATE_RU
        stored += history_sessions * share * (
            session_doc_bytes(n) + pages_of(n) * SESSION_BYTES
        )
        export += history_sessions * share * full_read_ru(n)
    export += math.ceil(history_sessions / EXPORT_PAGE_SESSIONS) * query_ru(
        EXPORT_PAGE_SESSIONS * SESSION_BYTES
    )
    out.ru = {
        "append": appends,
        "append: read after a cache miss": misses,
        "create session": creates,
        "read newest 50": reads,
        "list sessions": w.lists_per_day * max(LIST_RU, QUERY_FLOOR_RU),
        "search": w.searches_per_day * query_ru(w.search_scan_share * stored),
        "export": w.exports_per_month / DAYS_PER_MONTH * export,
    }
    out.stored_bytes = stored
    return out


def old_model(w: Workload) -> PerUserDay:
    out = PerUserDay("old model (a document per message)", index_overhead=w.old_index_overhead)
    reads = 0.0
    for share, n in w.session_mix:
        sessions = w.sessions_per_day * share
        # The newest 50 messages: one query returning them (charged by its bytes, floored).
        reads += sessions * w.reads_per_message * sum(
            query_ru(min(i, 50) * OLD_DOC_BYTES) for i in range(1, n + 1)
        )
    history_messages = w.messages_per_day * w.history_days
    stored = history_messages * OLD_DOC_BYTES
    out.ru = {
        "append": w.messages_per_day * write_ru(OLD_DOC_BYTES),
        "append: read after a cache miss": 0.0,
        "create session": 0.0,
        "read newest 50": reads,
        "list sessions": w.lists_per_day * QUERY_FLOOR_RU,
        "search": w.searches_per_day * query_ru(w.search_scan_share * stored),
        "export": w.exports_per_month / DAYS_PER_MONTH * query_ru(stored),
    }
    out.stored_bytes = stored
    return out


def rewrite_model(w: Workload) -> PerUserDay:
    out = PerUserDay("whole-document rewrite per append", index_overhead=w.index_overhead)
    appends = reads = 0.0
    stored = export = 0.0
    history_sessions = w.sessions_per_day * w.history_days
    for share, n in w.session_mix:
        if session_doc_bytes(n) > MAX_ITEM_BYTES:
            out.feasible = False
            out.note = f"a session of {n} messages passes Cosmos DB's 2 MB item limit"
        sessions = w.sessions_per_day * share
        appends += sessions * sum(write_ru(session_doc_bytes(i)) for i in range(1, n + 1))
        reads += sessions * w.reads_per_message * sum(
            read_ru(session_doc_bytes(i)) for i in range(1, n + 1)
        )
        stored += history_sessions * share * session_doc_bytes(n)
        export += history_sessions * share * read_ru(session_doc_bytes(n))
    export += math.ceil(history_sessions / EXPORT_PAGE_SESSIONS) * QUERY_FLOOR_RU
    out.ru = {
        "append": appends,
        "append: read after a cache miss": 0.0,
        "create session": 0.0,
        "read newest 50": reads,
        "list sessions": w.lists_per_day * QUERY_FLOOR_RU,
        "search": w.searches_per_day * query_ru(w.search_scan_share * stored),
        "export": w.exports_per_month / DAYS_PER_MONTH * export,
    }
    out.stored_bytes = stored
    return out


@dataclass
class Deployment:
    users: int
    ru_per_day: float
    average_rus: float
    peak_rus: float
    storage_gb: float
    serverless: float
    manual_rus: int
    manual: float
    autoscale_max: int
    autoscale: float
    notes: list[str]


def deployment(per_user: PerUserDay, w: Workload) -> Deployment:
    ru_day = per_user.total * w.users
    average = ru_day / 86400
    peak = average * w.peak_factor
    storage_gb = per_user.stored_bytes * (1 + per_user.index_overhead) * w.users / GB
    storage_cost = storage_gb * PRICE_STORAGE_PER_GB_MONTH
    serverless = ru_day * DAYS_PER_MONTH / 1e6 * PRICE_SERVERLESS_PER_MILLION_RU + storage_cost
    manual_rus = max(MANUAL_MIN_RUS, 100 * math.ceil(peak / 100), math.ceil(storage_gb * MANUAL_RUS_PER_GB))
    manual_rus = 100 * math.ceil(manual_rus / 100)
    manual = manual_rus / 100 * PRICE_MANUAL_PER_100_RUS_HOUR * HOURS_PER_MONTH + storage_cost
    autoscale_max = max(
        AUTOSCALE_MIN_MAX_RUS,
        1000 * math.ceil(peak / 1000),
        1000 * math.ceil(storage_gb * AUTOSCALE_MAX_RUS_PER_GB / 1000),
    )
    # A day as the peak factor draws it: 24/F busy hours at the peak, the rest idle, billed at the
    # autoscale floor (10% of the maximum); each hour is billed at the highest RU/s it reached.
    busy_hours = 24 / w.peak_factor
    billed_rus_hours_per_day = busy_hours * max(peak, 0.1 * autoscale_max) + (24 - busy_hours) * 0.1 * autoscale_max
    autoscale = (
        billed_rus_hours_per_day * DAYS_PER_MONTH / 100 * PRICE_AUTOSCALE_PER_100_RUS_HOUR + storage_cost
    )
    notes = []
    if storage_gb > SERVERLESS_MAX_STORAGE_GB:
        notes.append("serverless: over 1 TB")
    if peak > SERVERLESS_BASE_RUS:
        notes.append("serverless: peak over 5,000 RU/s")
    return Deployment(
        users=w.users, ru_per_day=ru_day, average_rus=average, peak_rus=peak, storage_gb=storage_gb,
        serverless=serverless, manual_rus=manual_rus, manual=manual, autoscale_max=autoscale_max,
        autoscale=autoscale, notes=notes,
    )


# --- Self-check: the size model reproduces the bench's figures --------------------------------


def self_check() -> list[str]:
    """The sizes above, through the published table, against docs/cosmos.md's measured figures."""
    checks = []
    expected_rewrite = {10: 6.88, 50: 10.99, 200: 44.19, 1000: 250.19}
    for n, want in expected_rewrite.items():
        got = write_ru(session_doc_bytes(n))
        checks.append((f"rewrite append at {n} messages", got, want, 0.15))
    # "Append RU (mean since the first)" of the per-length table, before any seal.
    for n, want in {10: 6.41, 50: 8.80}.items():
        got = sum(write_ru(session_doc_bytes(i)) for i in range(1, n + 1)) / n
        checks.append((f"mean append of the first {n} messages", got, want, 0.1))
    for n, want in {10: 1.21, 50: 2.10}.items():
        checks.append((f"full read of {n} messages", read_ru(session_doc_bytes(n)), want, 0.05))
    # Mean since the first, sealing included, at 200 and 1,000 (9.26, 9.40 measured).
    for n, want in {200: 9.26, 1000: 9.40}.items():
        first = sum(write_ru(session_doc_bytes(i)) for i in range(1, FIRST_SEAL_AT + 1))
        got = (first + (n - FIRST_SEAL_AT) * APPEND_STEADY_RU) / n
        checks.append((f"mean append of {n} messages, seals included", got, want, 0.1))
    lines = []
    for what, got, want, tolerance in checks:
        ok = abs(got - want) <= tolerance
        lines.append(f"| {what} | {want:.2f} | {got:.2f} | {'yes' if ok else 'NO'} |")
        if not ok:
            raise SystemExit(f"capacity.py: self-check failed: {what}: model {got:.2f}, measured {want:.2f}")
    return lines


# --- Output -----------------------------------------------------------------------------------


def money(x: float) -> str:
    if x >= 100:
        return f"${x:,.0f}"
    return f"${x:,.2f}"


def number(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:,.1f}"
    return f"{x:,.2f}"


def users_label(n: int) -> str:
    for size, suffix in ((1_000_000, " million"), (1_000, " thousand")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return f"{n:,}"


def render(base: Workload, user_counts: list[int]) -> str:
    models = [this_design(base), old_model(base), rewrite_model(base)]
    out: list[str] = []
    w = out.append
    w(f"Generated by `python3 scripts/capacity.py` with M = {base.messages_per_day:g} messages per user per day"
      f" and the assumptions below; do not edit by hand (`--write docs/capacity.md` refreshes it).\n")
    w("### Assumptions (the script's defaults; each one a flag)\n")
    mix = ", ".join(f"{share:.0%} of sessions {n} messages long" for share, n in base.session_mix)
    rows = [
        ("messages per user per day (M)", f"{base.messages_per_day:g} (user and assistant together; ~600 B each)", "--messages"),
        ("sessions", f"{mix}: {base.mean_session_messages:g} messages per session on average, {base.sessions_per_day:.2f} new sessions per user per day", "--short, --long, --long-share"),
        ("reads", f"{base.reads_per_message:g} reads of the newest 50 messages per message written", "--reads-per-message"),
        ("session listings", f"{base.lists_per_day:g} per user per day (first page)", "--lists"),
        ("searches", f"{base.searches_per_day:g} per user per day, each reading {base.search_scan_share:.0%} of the user's history on average", "--searches, --search-scan"),
        ("exports", f"{base.exports_per_month:g} of everything per user per month", "--exports"),
        ("history kept", f"{base.history_days} days (no retention): storage, searches and exports are those of the end of that period", "--history-days"),
        ("appends missing the instance's cache", f"{base.cache_miss_share:.0%}: each adds a read of the session (its newest 50 messages)", "--cache-miss"),
        ("peak factor", f"{base.peak_factor:g}: the busiest hour's RU/s over the day's mean (as if a day's load fell into {24 / base.peak_factor:g} hours)", "--peak-factor"),
        ("index", f"{base.index_overhead:.0%} of the data in the sessions container (message bodies and context are not indexed); {base.old_index_overhead:.0%} for the old per-message documents", "--index, --old-index"),
    ]
    w("| assumption | value | flag |")
    w("|---|---|---|")
    for name, value, flag in rows:
        w(f"| {name} | {value} | `{flag}` |")
    w("")
    w("### One user's day, by operation (RU)\n")
    names = list(models[0].ru.keys())
    w("| operation | " + " | ".join(m.model for m in models) + " |")
    w("|---|" + "---:|" * len(models))
    for name in names:
        w(f"| {name} | " + " | ".join(number(m.ru[name]) for m in models) + " |")
    w("| **total per user per day** | " + " | ".join(f"**{number(m.total)}**" for m in models) + " |")
    w("| RU per message written | " + " | ".join(number(m.total / base.messages_per_day) for m in models) + " |")
    w("| stored per user (MB, data + index) | " + " | ".join(
        number(m.stored_bytes * (1 + m.index_overhead) / 1e6) for m in models) + " |")
    w("| stored per message (bytes, data + index) | " + " | ".join(
        f"{m.stored_bytes * (1 + m.index_overhead) / (base.messages_per_day * base.history_days):,.0f}" for m in models) + " |")
    w("")
    for m in models:
        if not m.feasible:
            w(f"The rewrite model cannot run this workload: {m.note}.\n")
    w("### This design, by number of users\n")
    w("| users | RU per day | RU/s average | RU/s peak | storage (GB) | serverless $/month | provisioned manual: RU/s, $/month | autoscale: max RU/s, $/month | serverless limits |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in user_counts:
        d = deployment(models[0], replace(base, users=n))
        w(f"| {users_label(n)} | {d.ru_per_day / 1e6:,.1f} M | {number(d.average_rus)} | {number(d.peak_rus)} | "
          f"{number(d.storage_gb)} | {money(d.serverless)} | {d.manual_rus:,}: {money(d.manual)} | "
          f"{d.autoscale_max:,}: {money(d.autoscale)} | {'; '.join(d.notes) or 'within'} |")
    w("")
    example_users = 1_000_000 if 1_000_000 in user_counts else user_counts[-1]
    ex_w = replace(base, users=example_users)
    ex = deployment(models[0], ex_w)
    per_user = models[0].total
    storage_cost = ex.storage_gb * PRICE_STORAGE_PER_GB_MONTH
    busy = 24 / base.peak_factor
    billed = busy * max(ex.peak_rus, 0.1 * ex.autoscale_max) + (24 - busy) * 0.1 * ex.autoscale_max
    w(f"### The arithmetic of one row ({users_label(example_users)} users)\n")
    w("```text")
    w(f"RU per day      = {example_users:,} users x {per_user:,.1f} RU = {ex.ru_per_day:,.0f} RU")
    w(f"average RU/s    = {ex.ru_per_day:,.0f} / 86,400 = {ex.average_rus:,.0f}")
    w(f"peak RU/s       = {base.peak_factor:g} x {ex.average_rus:,.0f} = {ex.peak_rus:,.0f}")
    w(f"storage         = {example_users:,} x {models[0].stored_bytes / 1e6:,.2f} MB x {1 + models[0].index_overhead:g} = {ex.storage_gb:,.0f} GB"
      f" -> {money(storage_cost)} a month at ${PRICE_STORAGE_PER_GB_MONTH}/GB")
    w(f"serverless      = {ex.ru_per_day:,.0f} x {DAYS_PER_MONTH:.2f} / 1e6 x ${PRICE_SERVERLESS_PER_MILLION_RU}"
      f" + storage = {money(ex.serverless - storage_cost)} + {money(storage_cost)} = {money(ex.serverless)}")
    w(f"manual          = max(400, peak to 100, 1 RU/s per GB) = {ex.manual_rus:,} RU/s;"
      f" {ex.manual_rus:,} / 100 x ${PRICE_MANUAL_PER_100_RUS_HOUR} x {HOURS_PER_MONTH} + storage = {money(ex.manual)}")
    w(f"autoscale max   = max(1,000, peak to 1,000, 10 RU/s per GB to 1,000) = {ex.autoscale_max:,} RU/s (floor {ex.autoscale_max // 10:,})")
    w(f"autoscale bill  = ({busy:g} h x {max(ex.peak_rus, 0.1 * ex.autoscale_max):,.0f} + {24 - busy:g} h x {0.1 * ex.autoscale_max:,.0f})"
      f" = {billed:,.0f} RU/s-hours a day; x {DAYS_PER_MONTH:.2f} / 100 x ${PRICE_AUTOSCALE_PER_100_RUS_HOUR} + storage = {money(ex.autoscale)}")
    w("```\n")
    w("### Beside the old per-message model and a whole-document rewrite\n")
    w("RU/s at the peak, storage, and the cheaper of provisioned manual and autoscale per month"
      " (serverless where it is cheaper and within its limits):\n")
    w("| users | peak RU/s: this | old | rewrite | storage GB: this | old | rewrite | $/month: this | old | rewrite |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in user_counts:
        ds = [deployment(m, replace(base, users=n)) for m in models]

        def cheapest(d: Deployment) -> str:
            options = [(d.manual, "manual"), (d.autoscale, "autoscale")]
            if not d.notes:
                options.append((d.serverless, "serverless"))
            cost, kind = min(options)
            return f"{money(cost)} ({kind})"

        w(f"| {users_label(n)} | " + " | ".join(number(d.peak_rus) for d in ds) + " | "
          + " | ".join(number(d.storage_gb) for d in ds) + " | "
          + " | ".join(cheapest(d) for d in ds) + " |")
    w("")
    w("### What moves the figures (1 million users, one assumption changed at a time)\n")
    w("| change | RU per user per day | RU/s peak | storage (GB) | cheapest $/month |")
    w("|---|---:|---:|---:|---:|")
    million = replace(base, users=1_000_000)
    variants = [
        ("none (the defaults)", million),
        ("M = 5 messages a day", replace(million, messages_per_day=5)),
        ("M = 50 messages a day", replace(million, messages_per_day=50)),
        ("M = 100 messages a day", replace(million, messages_per_day=100)),
        ("no searches", replace(million, searches_per_day=0)),
        ("a search reads 10% of the history", replace(million, search_scan_share=0.1)),
        ("a search reads all of it (a word found nowhere)", replace(million, search_scan_share=1.0)),
        ("2 reads per message", replace(million, reads_per_message=2)),
        ("every append misses the cache", replace(million, cache_miss_share=1.0)),
        ("90 days of history (retention)", replace(million, history_days=90)),
        ("peak factor 2", replace(million, peak_factor=2)),
        ("peak factor 6", replace(million, peak_factor=6)),
        ("sessions all 20 messages long", replace(million, session_mix=((1.0, 20),))),
    ]
    for label, variant in variants:
        per_user = this_design(variant)
        d = deployment(per_user, variant)
        options = [(d.manual, "manual"), (d.autoscale, "autoscale")]
        if not d.notes:
            options.append((d.serverless, "serverless"))
        cost, kind = min(options)
        w(f"| {label} | {number(per_user.total)} | {number(d.peak_rus)} | {number(d.storage_gb)} | {money(cost)} ({kind}) |")
    w("")
    w("### The model against the bench\n")
    w("The sizes the script uses (a message 602 bytes of a session document, the document's own"
      f" fields {SESSION_BYTES} bytes), through the published table, reproduce the measured figures of"
      " [cosmos.md](cosmos.md#choosing-the-seal-policy); the script stops if they do not:\n")
    w("| figure | measured (cosmos.md) | model | within tolerance |")
    w("|---|---:|---:|---|")
    out.extend(self_check())
    return "\n".join(out) + "\n"


BEGIN = "<!-- capacity.py: begin -->"
END = "<!-- capacity.py: end -->"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Workload()
    p.add_argument("--users", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000, 10_000_000])
    p.add_argument("--messages", type=float, default=d.messages_per_day, help="M: messages per user per day")
    p.add_argument("--short", type=int, default=d.session_mix[0][1], help="messages in a short session")
    p.add_argument("--long", type=int, default=d.session_mix[1][1], help="messages in a long session")
    p.add_argument("--long-share", type=float, default=d.session_mix[1][0], help="share of sessions that are long")
    p.add_argument("--reads-per-message", type=float, default=d.reads_per_message)
    p.add_argument("--lists", type=float, default=d.lists_per_day, help="session listings per user per day")
    p.add_argument("--searches", type=float, default=d.searches_per_day, help="searches per user per day")
    p.add_argument("--search-scan", type=float, default=d.search_scan_share, help="share of the history a search reads")
    p.add_argument("--exports", type=float, default=d.exports_per_month, help="exports per user per month")
    p.add_argument("--history-days", type=int, default=d.history_days)
    p.add_argument("--cache-miss", type=float, default=d.cache_miss_share)
    p.add_argument("--peak-factor", type=float, default=d.peak_factor)
    p.add_argument("--index", type=float, default=d.index_overhead)
    p.add_argument("--old-index", type=float, default=d.old_index_overhead)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, help="replace the generated part of this Markdown file")
    group.add_argument("--check", type=Path, help="fail if the generated part of this file is stale")
    a = p.parse_args()
    workload = Workload(
        messages_per_day=a.messages,
        session_mix=((1 - a.long_share, a.short), (a.long_share, a.long)),
        reads_per_message=a.reads_per_message, lists_per_day=a.lists, searches_per_day=a.searches,
        search_scan_share=a.search_scan, exports_per_month=a.exports, history_days=a.history_days,
        cache_miss_share=a.cache_miss, peak_factor=a.peak_factor, index_overhead=a.index,
        old_index_overhead=a.old_index,
    )
    text = render(workload, a.users)
    if not (a.write or a.check):
        sys.stdout.write(text)
        return 0
    path = a.write or a.check
    doc = path.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"capacity.py: {path} has no {BEGIN} … {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{text}{END}{tail}"
    if a.check:
        if new != doc:
            print(f"capacity.py: {path} is out of date: run python3 scripts/capacity.py --write {path}")
            return 1
        print(f"capacity.py: {path} is up to date")
        return 0
    path.write_text(new, encoding="utf-8")
    print(f"capacity.py: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
