"""Trust-layer benchmark: PII redaction per message, and audit-log appends under concurrency.

    .venv/bin/python scripts/bench/trust.py [--seconds 3] [--levels 1,4,16,64] [--database-url URL]

Redaction runs on one core in this process, over four message shapes (a short chat line, a ~200-char
message with PII, a ~200-char message without, a ~4,000-char document), side by side:
detection alone, and the full redaction (detection + keyed fingerprint + AES-GCM seal per new value).

Audit appends go through the gateway's own code (`gateway.store.audit.append`, each in its own
transaction, serialised by the chain head's row lock) against a real PostgreSQL (embedded by default,
in a scratch dir), interleaved round by round with the reference: the same row INSERTed into an
unchained table with no head lock — the price of the hash chain is the ratio between the two.
Results go to scripts/bench/results/trust-*.json and print as tables.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scripts.bench.common import pct, write_results  # noqa: E402
from tests.unit.pii_corpus import DECOYS, EXAMPLES, HELD_OUT  # noqa: E402

SHORT = "Hi, I lost my card yesterday, can you block it?"
WITH_PII = ("Hello, this is Ada Lovelace. My card 4111 1111 1111 1111 was stolen; reach me at ada.lovelace@example.com "
            "or +44 20 7946 0958. My IBAN is GB82 WEST 1234 5698 7654 32 and I was born on 10 December 1985.")
WITHOUT_PII = ("Hello, I would like to know the opening hours of the branch on the high street and whether I can "
               "order a new debit card online, and what the fees are for transfers abroad in euros. Thanks!")
DOCUMENT = (WITHOUT_PII + " ") * 14 + WITH_PII + " " + (WITHOUT_PII + " ") * 5
SHAPES = {"short": SHORT, "200 chars, PII": WITH_PII, "200 chars, none": WITHOUT_PII, "4k chars, PII": DOCUMENT}


# -- redaction --------------------------------------------------------------------------------------------

def time_per_call(fn, text: str, seconds: float) -> list[float]:
    """Per-call seconds for ``fn(text)`` repeated for about ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        fn(text)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn(text)
        samples.append(time.perf_counter() - t0)
    return samples


def bench_redaction(seconds: float) -> list[dict]:
    import secrets

    from gateway.safety.pii import DEFAULT_PATTERNS, PiiDetector
    from gateway.safety.redact import Redactor, SessionVault
    from gateway.safety.vault import StaticKey, VaultCipher

    detector = PiiDetector(DEFAULT_PATTERNS)
    redactor = Redactor(detector, VaultCipher(StaticKey(secrets.token_bytes(32))))
    tenant = "11111111-1111-1111-1111-111111111111"

    def redact_fresh(text: str) -> str:   # a new session each time: every value is sealed
        return redactor.redact(text, SessionVault(tenant, "22222222-2222-2222-2222-222222222222"))

    rows = []
    corpus = [text for text, _ in EXAMPLES] + DECOYS   # every labelled text, one after the other
    for path, fn in (("detect", detector.detect), ("redact", redact_fresh)):
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for text in corpus:
                t0 = time.perf_counter()
                fn(text)
                samples.append(time.perf_counter() - t0)
        rows.append({"shape": f"corpus ({len(corpus)} texts)", "chars": round(statistics.fmean(map(len, corpus))),
                     "path": path, "n": len(samples), "messages_per_s": len(samples) / sum(samples),
                     "p50_us": pct(samples, 50) * 1e6, "p95_us": pct(samples, 95) * 1e6, "found": None})
    for shape, text in SHAPES.items():
        for path, fn in (("detect", detector.detect), ("redact", redact_fresh)):
            samples = time_per_call(fn, text, seconds)
            rows.append({"shape": shape, "chars": len(text), "path": path, "n": len(samples),
                         "messages_per_s": len(samples) / sum(samples), "p50_us": pct(samples, 50) * 1e6,
                         "p95_us": pct(samples, 95) * 1e6, "found": len(detector.detect(text))})
    return rows


# -- audit appends ----------------------------------------------------------------------------------------

REFERENCE_TABLE = """CREATE TABLE IF NOT EXISTS bench_plain_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts timestamptz NOT NULL, tenant_id uuid, action text NOT NULL,
    session_id uuid, entry text NOT NULL, content text, prev_hash text NOT NULL, hash text NOT NULL)"""


def audit_event(i: int):
    from gateway.store.audit import AuditEvent

    return AuditEvent("chat.turn", "enc_bench", None, None, f"turn-{i}", "chat", content={
        "input": [{"role": "user", "content": "my card is <CARD_1>, please block it"}],
        "output": "I have blocked <CARD_1>.", "model": "tiny-qwen2", "tokens": {"prompt": 40, "completion": 12},
        "latency_ms": {"ttft": 40.1, "total": 210.7}})


async def append_plain(conn, event) -> None:
    """The reference: the same row shape, no chain (no head lock, no previous hash)."""
    from gateway.store.audit import next_row

    row = next_row(0, "0" * 64, event)
    await conn.execute("INSERT INTO bench_plain_log (ts, tenant_id, action, session_id, entry, content, prev_hash, hash) "
                       "VALUES (%(ts)s, %(tenant_id)s, %(action)s, %(session_id)s, %(entry)s, %(content)s, %(prev_hash)s, "
                       "%(hash)s)", row)


async def run_level(pool, path: str, concurrency: int, seconds: float) -> dict:
    from gateway.store import audit

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < deadline:
            event = audit_event(w * 1_000_000 + i)
            i += 1
            t0 = time.perf_counter()
            try:
                async with pool.connection() as conn, conn.transaction():
                    if path == "chained":
                        await audit.append(conn, event)
                    else:
                        await append_plain(conn, event)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"path": path, "concurrency": concurrency, "appends": len(latencies), "errors": errors,
            "appends_per_s": len(latencies) / wall, "p50_ms": pct(latencies, 50) * 1e3, "p95_ms": pct(latencies, 95) * 1e3}


async def bench_audit(database_url: str, levels: list[int], seconds: float, rounds: int) -> list[dict]:
    from psycopg_pool import AsyncConnectionPool

    from gateway.store.audit import verify_async

    async with AsyncConnectionPool(database_url, min_size=max(levels), max_size=max(levels),
                                   kwargs={"autocommit": True}) as pool:
        async with pool.connection() as conn:
            await conn.execute(REFERENCE_TABLE)
        raw = []
        for r in range(rounds):
            for level in levels:
                order = ("chained", "plain") if r % 2 == 0 else ("plain", "chained")   # interleaved
                for path in order:
                    raw.append({"round": r, **await run_level(pool, path, level, seconds)})
        async with pool.connection() as conn:
            await conn.execute("DROP TABLE bench_plain_log")
            verified = await verify_async(conn)
    rows = []
    for level in levels:
        for path in ("chained", "plain"):
            mine = [x for x in raw if x["concurrency"] == level and x["path"] == path]
            rows.append({"path": path, "concurrency": level, "appends": sum(x["appends"] for x in mine),
                         "errors": sum(x["errors"] for x in mine),
                         "appends_per_s": statistics.median(x["appends_per_s"] for x in mine),
                         "p50_ms": statistics.median(x["p50_ms"] for x in mine),
                         "p95_ms": statistics.median(x["p95_ms"] for x in mine)})
    print(f"audit chain after the benchmark: {verified.describe()}")
    return rows


# -- output -----------------------------------------------------------------------------------------------

def detection_quality() -> dict:
    """Recall and precision per type on the labelled corpus (all of it, and the held-out part)."""
    from gateway.safety.pii import DEFAULT_PATTERNS, PiiDetector
    from gateway.safety.pii_eval import STRUCTURED, decoy_leaks, evaluate, micro_average

    detector = PiiDetector(DEFAULT_PATTERNS)
    per_type = evaluate(detector, EXAMPLES)
    held_out = evaluate(detector, HELD_OUT)
    return {"per_type": per_type, "structured": micro_average(per_type, STRUCTURED),
            "all": micro_average(per_type, per_type), "held_out_all": micro_average(held_out, held_out),
            "decoys": len(DECOYS), "decoys_leaked": len(decoy_leaks(detector, DECOYS))}


def print_tables(redaction: list[dict], audit_rows: list[dict], quality: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))   # wide enough that the tables do not wrap
    t = Table("type", "tp", "fp", "fn", "recall", "precision", title="PII detection on the labelled corpus")
    rows = list(quality["per_type"].items()) + [("structured", quality["structured"]), ("all", quality["all"]),
                                                ("held-out", quality["held_out_all"])]
    for name, m in rows:
        t.add_row(name, str(m["tp"]), str(m["fp"]), str(m["fn"]), f"{m['recall']:.3f}", f"{m['precision']:.3f}")
    console.print(t)
    console.print(f"decoys left alone: {quality['decoys'] - quality['decoys_leaked']}/{quality['decoys']}")
    t = Table("message", "chars", "path", "msgs/s (1 core)", "p50 µs", "p95 µs", "values found",
              title="PII redaction, one core")
    for r in redaction:
        t.add_row(r["shape"], str(r["chars"]), r["path"], f"{r['messages_per_s']:,.0f}", f"{r['p50_us']:.0f}",
                  f"{r['p95_us']:.0f}", "" if r["found"] is None else str(r["found"]))
    console.print(t)
    t = Table("concurrency", "path", "appends/s", "p50 ms", "p95 ms", "errors", "chained ÷ plain",
              title="audit appends (each its own transaction)")
    for level in sorted({r["concurrency"] for r in audit_rows}):
        chained = next(r for r in audit_rows if r["concurrency"] == level and r["path"] == "chained")
        plain = next(r for r in audit_rows if r["concurrency"] == level and r["path"] == "plain")
        for r in (chained, plain):
            ratio = f"{chained['appends_per_s'] / plain['appends_per_s']:.2f}" if r is chained and plain["appends_per_s"] else ""
            t.add_row(str(level), r["path"], f"{r['appends_per_s']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
                      str(r["errors"]), ratio)
    console.print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved audit rounds")
    ap.add_argument("--levels", default="1,4,16,64", help="audit concurrency levels")
    ap.add_argument("--database-url", help="an existing migrated database (default: a scratch embedded one)")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    quality = detection_quality()
    redaction = bench_redaction(args.seconds)
    scratch = None
    db = None
    url = args.database_url
    if not url:
        from deploy.postgres import start_database
        from gateway.store.migrate import migrate

        scratch = Path(tempfile.mkdtemp(prefix="trust-bench-", dir=REPO / "var"))
        db = start_database(scratch, None)
        migrate(db.url)
        url = db.url
    try:
        audit_rows = asyncio.run(bench_audit(url, levels, args.seconds, args.rounds))
    finally:
        if db is not None:
            db.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print_tables(redaction, audit_rows, quality)
    path = write_results("trust", {"detection": quality, "redaction": redaction, "audit": audit_rows,
                                   "settings": {"seconds": args.seconds, "rounds": args.rounds, "levels": levels}})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
