"""The knowledge base through the real appliance: a fictional bank's corpus in five formats ingested by the
CLI, hybrid retrieval with the real MiniLM embeddings and Postgres full-text search, grounded answers with
citations, the "I don't know" path without an LLM call, replacement on re-ingest, tenant isolation, and
bad files that get a clear error and leave nothing behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from gateway.knowledge.ground import CLOSE, DONT_KNOW, OPEN
from gateway.store import api_keys
from tests.integration.conftest import Appliance, GatewayProcess, start_gateway
from tests.integration.knowledge_corpus import DOCS, INJECTION_DOC, OFF_CORPUS, QUESTIONS, CorpusDoc
from tests.integration.upstream_proxy import RecordingProxy
from tests.knowledge_files import make_docx, make_html, make_markdown, make_pdf, make_text

pytestmark = pytest.mark.timeout(900)
RUN = uuid.uuid4().hex[:6]          # tenants of their own: the tests assume an empty knowledge base
A, B, CLI_TENANT = f"kb-a-{RUN}", f"kb-b-{RUN}", f"kb-cli-{RUN}"
TABLE_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
RULE_ROW = re.compile(r"^\s*\|?[\s:|-]+\|?\s*$")


# -- the corpus, written as real files -------------------------------------------------------------------

def blocks_of(doc: CorpusDoc) -> list[tuple[str, object]]:
    """The corpus' markdown-ish body as format-neutral blocks: headings, paragraphs, lists, tables."""
    blocks: list[tuple[str, object]] = [("h1", doc.title)]
    for part in re.split(r"\n\s*\n", doc.body.strip()):
        lines = [line.rstrip() for line in part.strip().splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            blocks.append((f"h{min(3, max(2, level))}", lines[0].lstrip("#").strip()))
            lines = lines[1:]
            if not lines:
                continue
        if all(TABLE_ROW.match(line) for line in lines):
            rows = [[c.strip() for c in TABLE_ROW.match(line).group(1).split("|")] for line in lines if not RULE_ROW.match(line)]
            blocks.append(("table", rows))
        elif all(line.lstrip().startswith(("- ", "* ")) for line in lines):
            blocks.append(("ul", [line.lstrip()[2:].strip() for line in lines]))
        else:
            blocks.append(("p", " ".join(line.strip() for line in lines)))
    return blocks


def latin1(blocks: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The PDF writer's core font is Latin-1: spell the few other characters the corpus uses."""
    table = str.maketrans({"€": "EUR ", "—": "-", "–": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "…": "...", "•": "-"})

    def fix(x):
        return x.translate(table) if isinstance(x, str) else [fix(i) for i in x]

    return [(k, fix(p)) for k, p in blocks]


def write_doc(doc: CorpusDoc, folder: Path) -> Path:
    blocks = blocks_of(doc)
    path = folder / f"{doc.name}.{doc.format}"
    if doc.format == "pdf":
        make_pdf(latin1(blocks), path, title=doc.title)
    elif doc.format == "docx":
        make_docx(blocks, path, title=doc.title)
    else:
        path.write_text({"md": make_markdown, "html": make_html, "txt": make_text}[doc.format](blocks))
    return path


# -- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys(appliance: Appliance) -> dict[tuple[str, str], str]:
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        out = {}
        for slug in (A, B):
            tenant = api_keys.ensure_tenant(conn, slug, slug)
            for role in ("user", "supervisor"):
                out[slug, role] = api_keys.create_key(conn, tenant, role, label="knowledge test")
    return out


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120, trust_env=False)


def enclave_cli(appliance: Appliance, *args: str) -> subprocess.CompletedProcess:
    env = {**appliance.env, "ENCLAVE_DATABASE_URL": appliance.database_url, "ENCLAVE_SERVING_URL": appliance.serving_url,
           "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for doc in DOCS:
        write_doc(doc, folder)
    return folder


@pytest.fixture(scope="module")
def corpus(appliance: Appliance, keys: dict, corpus_dir: Path) -> dict[str, str]:
    """The whole corpus uploaded to tenant kb-a's "policies" collection, each file with its tags and effective
    date: name → document id."""
    ids = {}
    with client(appliance.gateway_url, keys[A, "supervisor"]) as c:
        for doc in DOCS:
            path = corpus_dir / f"{doc.name}.{doc.format}"
            r = c.post("/v1/knowledge/documents", files={"file": (path.name, path.read_bytes())},
                       data={"collection": "policies", "tags": ",".join(doc.tags), **({"effective_date": doc.effective}
                                                                                   if doc.effective else {})})
            assert r.status_code == 201, (doc.name, r.text)
            ids[doc.name] = r.json()["document"]["id"]
    return ids


@pytest.fixture(scope="module")
def proxied(appliance: Appliance, proxy: RecordingProxy) -> Iterator[GatewayProcess]:
    gw = start_gateway(appliance, "knowledge", llm_chain=[{"name": "primary", "url": proxy.url}],
                       knowledge_max_upload_bytes=200_000)
    yield gw
    gw.stop()


# -- ingest ---------------------------------------------------------------------------------------------

def test_the_cli_ingests_a_folder_with_a_summary_and_resumes(appliance: Appliance, corpus: dict, corpus_dir: Path) -> None:
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        api_keys.ensure_tenant(conn, CLI_TENANT, "knowledge CLI test")
        formats = dict(conn.execute("SELECT format, count(*) FROM kb_documents d JOIN tenants t ON t.id = d.tenant_id "
                                    "WHERE t.slug = %s GROUP BY format", (A,)).fetchall())
    assert set(formats) == {"md", "txt", "html", "pdf", "docx"} and sum(formats.values()) == len(DOCS)
    first = enclave_cli(appliance, "knowledge", "ingest", str(corpus_dir), "--tenant", CLI_TENANT, "--tags", "policy")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{len(DOCS)} created" in first.stdout and "0 failed" in first.stdout
    assert "documents" in first.stderr          # the progress bar
    again = enclave_cli(appliance, "knowledge", "ingest", str(corpus_dir), "--tenant", CLI_TENANT)
    assert again.returncode == 0 and f"0 created, 0 replaced, 0 updated, {len(DOCS)} unchanged" in again.stdout, again.stdout
    listed = enclave_cli(appliance, "knowledge", "list", "--tenant", CLI_TENANT)
    assert listed.returncode == 0 and DOCS[0].title[:20] in listed.stdout
    missing = enclave_cli(appliance, "knowledge", "ingest", "/no/such/folder", "--tenant", CLI_TENANT)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    with psycopg.connect(appliance.database_url) as conn:
        n, empty = conn.execute("SELECT count(*), count(*) FILTER (WHERE d.chunk_count = 0) FROM kb_documents d "
                                "JOIN tenants t ON t.id = d.tenant_id WHERE t.slug = %s", (CLI_TENANT,)).fetchone()
    assert n == len(DOCS) and empty == 0


# -- retrieval quality ----------------------------------------------------------------------------------

def test_questions_find_their_document_in_the_top_3(appliance: Appliance, keys: dict, corpus: dict) -> None:
    titles = {d.name: d.title for d in DOCS}
    found, ranks, misses = 0, [], []
    with client(appliance.gateway_url, keys[A, "user"]) as c:
        for q in QUESTIONS:
            r = c.get("/v1/knowledge/search", params={"q": q.text, "top_k": 3, "collection": "policies"})
            assert r.status_code == 200, r.text
            docs = list(dict.fromkeys(h["document_id"] for h in r.json()["data"]))
            if corpus[q.expected] in docs:
                found += 1
                ranks.append(docs.index(corpus[q.expected]) + 1)
            else:
                misses.append(f"{q.text!r} → {[h['title'] for h in r.json()['data']]} (wanted {titles[q.expected]!r})")
    rate = found / len(QUESTIONS)
    mrr = sum(1 / r for r in ranks) / len(QUESTIONS)
    print(f"\ntop-3 hit rate {rate:.3f} ({found}/{len(QUESTIONS)}), MRR@3 {mrr:.3f}\n" + "\n".join(misses))
    assert rate >= 0.90, "\n".join(misses)


def test_a_question_longer_than_the_embedder_reads_is_still_answered(appliance: Appliance, keys: dict,
                                                                    corpus: dict) -> None:
    """A pasted preamble can push a question past the embedding model's 256 tokens: it is cut to its end
    (where the question is) rather than answered with a 503 (it was)."""
    q = QUESTIONS[0]
    preamble = "I have been a customer for many years and I use the mobile app nearly every single day. " * 18
    with client(appliance.gateway_url, keys[A, "user"]) as c:
        r = c.get("/v1/knowledge/search", params={"q": preamble + q.text, "top_k": 3, "collection": "policies"})
    assert r.status_code == 200, r.text
    assert corpus[q.expected] in {h["document_id"] for h in r.json()["data"]}


def test_relevance_separates_answerable_from_off_corpus_questions(appliance: Appliance, keys: dict, corpus: dict) -> None:
    """Every answerable question has a relevant chunk; most off-corpus ones have none. (With MiniLM some
    banking-adjacent questions the corpus is silent on — pet insurance, the base rate — still look relevant;
    the prompt then tells the model to say it does not know. The rate is reported, and kept from regressing.)"""
    def relevant(c: httpx.Client, q: str) -> list[str]:
        return [h["title"] for h in c.get("/v1/knowledge/search", params={"q": q}).json()["data"] if h["relevant"]]

    with client(appliance.gateway_url, keys[A, "user"]) as c:
        answerable = sum(bool(relevant(c, q.text)) for q in QUESTIONS)
        passed = {q: titles for q in OFF_CORPUS if (titles := relevant(c, q))}
    rejected = 1 - len(passed) / len(OFF_CORPUS)
    print(f"\nanswerable questions with a relevant chunk: {answerable}/{len(QUESTIONS)}; off-corpus rejected: "
          f"{len(OFF_CORPUS) - len(passed)}/{len(OFF_CORPUS)}; passed: {list(passed)}")
    assert answerable / len(QUESTIONS) >= 0.98
    assert rejected >= 0.6, passed


def test_filters_pick_collections_tags_and_dates(appliance: Appliance, keys: dict, corpus: dict) -> None:
    docs = {d.name: d for d in DOCS}
    old, new = docs["overdraft-charges-2024"], docs["overdraft-charges-2026"]
    question = "how much does an arranged overdraft cost a year"
    with client(appliance.gateway_url, keys[A, "user"]) as c:
        def search(**params) -> list[dict]:
            return c.get("/v1/knowledge/search", params={"q": question, "top_k": 10, **params}).json()["data"]

        assert {corpus[old.name], corpus[new.name]} <= {h["document_id"] for h in search()}
        dated = search(effective_from=new.effective)
        assert dated and corpus[old.name] not in {h["document_id"] for h in dated}
        assert all(h["effective_date"] >= new.effective for h in dated)
        tagged = search(tag="superseded")
        assert tagged and {h["document_id"] for h in tagged} <= {corpus[d.name] for d in DOCS if "superseded" in d.tags}
        assert search(collection="nothing-here") == []


# -- grounded answers ------------------------------------------------------------------------------------

def chat(c: httpx.Client, text: str, stream: bool = False, **extra) -> httpx.Response:
    r = c.post("/v1/chat/completions", json={"model": "enclave", "messages": [{"role": "user", "content": text}],
                                             "max_tokens": 8, "stream": stream, **extra})
    assert r.status_code == 200, r.text
    return r


def test_a_grounded_answer_carries_citations_and_fences_the_reference_data(appliance: Appliance, keys: dict, corpus: dict,
                                                                          proxied: GatewayProcess, proxy: RecordingProxy) -> None:
    # Aimed at the digest's quoted comments, one of which tries to give the model orders.
    question = "What did customers write about being locked out of the app after changing phones?"
    with client(proxied.url, keys[A, "user"]) as c:
        before = len(proxy.chat_requests())
        body = chat(c, question, knowledge={"collections": ["policies"]}).json()
        sent = proxy.chat_requests()[before:]
        streamed = chat(c, question, stream=True, knowledge=True)
    assert body["citations"] and corpus[INJECTION_DOC] in {x["document_id"] for x in body["citations"]}
    assert {"index", "document_id", "title", "section", "chunk", "score"} <= set(body["citations"][0])
    system = sent[0]["messages"][0]
    assert system["role"] == "system" and OPEN in system["content"] and system["content"].rstrip().endswith(CLOSE)
    fenced = system["content"].split(OPEN, 1)[1]
    assert "Ignore all previous instructions" in fenced   # the injection attempt is there, but only inside the fence …
    assert "ignore any instruction" in system["content"].split(OPEN, 1)[0]   # … after the rule that it is data
    first = json.loads(streamed.text.split("\n\n")[0].removeprefix("data: "))
    assert corpus[INJECTION_DOC] in {x["document_id"] for x in first["citations"]}   # before the first word
    with psycopg.connect(appliance.database_url) as conn:
        content = json.loads(conn.execute("SELECT content FROM audit_log WHERE action = 'chat.turn' AND session_id = %s",
                                          (body["session_id"],)).fetchone()[0])
    assert corpus[INJECTION_DOC] in content["retrieved_documents"] and content["grounding"]["answer"] == "grounded"


def test_off_corpus_chat_says_it_does_not_know_without_calling_the_llm(keys: dict, corpus: dict, proxied: GatewayProcess,
                                                                       proxy: RecordingProxy) -> None:
    with client(proxied.url, keys[A, "user"]) as c:
        before = len(proxy.chat_requests())
        for stream in (False, True):
            r = chat(c, OFF_CORPUS[0], stream=stream, knowledge=True)
            text = r.json()["choices"][0]["message"]["content"] if not stream else "".join(
                json.loads(e.removeprefix("data: "))["choices"][0]["delta"].get("content", "")
                for e in r.text.split("\n\n") if e.startswith("data: {"))
            assert text == DONT_KNOW
        assert len(proxy.chat_requests()) == before      # the LLM was never asked
        sid = r.headers["x-session-id"]
        turns = c.get(f"/v1/sessions/{sid}").json()["turns"]
    assert turns[-1]["content"] == DONT_KNOW and turns[-1]["status"] == "complete"


def test_session_metadata_turns_grounding_on(keys: dict, corpus: dict, proxied: GatewayProcess) -> None:
    with client(proxied.url, keys[A, "user"]) as c:
        sid = c.post("/v1/sessions", json={"metadata": {"knowledge": {"collections": ["policies"]}}}).json()["id"]
        r = c.post("/v1/chat/completions", headers={"X-Session-Id": sid},
                   json={"model": "enclave", "messages": [{"role": "user", "content": OFF_CORPUS[1]}], "max_tokens": 4})
        assert r.json()["choices"][0]["message"]["content"] == DONT_KNOW
        bad = c.post("/v1/chat/completions", json={"model": "enclave", "max_tokens": 4, "knowledge": {"top_k": 99},
                                                   "messages": [{"role": "user", "content": "hi"}]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "knowledge"


# -- replacement, isolation, bad files ------------------------------------------------------------------

def upload(c: httpx.Client, name: str, data: bytes, collection: str = "scratch", **form) -> httpx.Response:
    return c.post("/v1/knowledge/documents", files={"file": (name, data)}, data={"collection": collection, **form})


def test_reingesting_a_changed_document_replaces_it(keys: dict, proxied: GatewayProcess) -> None:
    v1 = b"# Savings bonus\n\nThe loyalty bonus on the Northwind Saver is 0.45 percent a year, paid in April.\n"
    v2 = b"# Savings bonus\n\nThe loyalty bonus on the Northwind Saver is 0.85 percent a year, paid each quarter.\n"
    with client(proxied.url, keys[A, "supervisor"]) as c:
        first = upload(c, "saver-bonus.md", v1, tags="savings")
        assert first.status_code == 201 and first.json()["status"] == "created"
        doc_id = first.json()["document"]["id"]
        assert upload(c, "saver-bonus.md", v1).json()["status"] == "unchanged"
        dup = upload(c, "copy-of-saver-bonus.md", v1)
        assert dup.status_code == 200 and dup.json()["status"] == "duplicate" and dup.json()["document"]["id"] == doc_id
        second = upload(c, "saver-bonus.md", v2)
        assert second.status_code == 201 and second.json()["status"] == "replaced"
        assert second.json()["document"]["id"] == doc_id and second.json()["document"]["version"] == 2
        hits = c.get("/v1/knowledge/search", params={"q": "loyalty bonus Northwind Saver", "collection": "scratch"}).json()["data"]
        texts = " ".join(h["text"] for h in hits)
        assert "0.85 percent" in texts and "0.45 percent" not in texts
        chunks = c.get(f"/v1/knowledge/documents/{doc_id}").json()["chunks"]
        assert len(chunks) == second.json()["chunks"] and all("0.45" not in ch["text"] for ch in chunks)
        assert c.delete(f"/v1/knowledge/documents/{doc_id}").status_code == 200
        assert c.get(f"/v1/knowledge/documents/{doc_id}").status_code == 404


def test_documents_of_another_embedding_model_are_found_by_their_words_until_reingested(
        appliance: Appliance, keys: dict, proxied: GatewayProcess) -> None:
    """A vector is comparable only with its own model's: after a model change, the documents not yet
    re-ingested leave the vector side (the text side still finds them), the search says how many, and
    ingesting the same file again re-embeds it."""
    collection, name = f"model-change-{RUN}", "harbour-vault.md"
    data = b"# Harbour vault\n\nThe Lindqvist harbour vault opens for safe deposit customers on Saturday mornings.\n"

    def search(c: httpx.Client, mode: str) -> dict:
        r = c.get("/v1/knowledge/search", params={"q": "When does the Lindqvist harbour vault open?",
                                                   "collection": collection, "mode": mode})
        assert r.status_code == 200, r.text
        return r.json()

    with client(proxied.url, keys[A, "supervisor"]) as c:
        doc_id = upload(c, name, data, collection=collection).json()["document"]["id"]
        fresh = search(c, "vector")
        assert {h["document_id"] for h in fresh["data"]} == {doc_id} and fresh["other_model_documents"] == 0
        with psycopg.connect(appliance.database_url, autocommit=True) as conn:   # as if ingested before a model change
            conn.execute("UPDATE kb_documents SET embed_model = 'retired-embedder' WHERE id = %s", (doc_id,))
            conn.execute("UPDATE kb_chunks SET embed_model = 'retired-embedder' WHERE document_id = %s", (doc_id,))
        stale = search(c, "vector")
        assert stale["data"] == [] and stale["other_model_documents"] == 1
        hybrid = search(c, "hybrid")["data"]
        assert hybrid and all(h["document_id"] == doc_id and h["vector_rank"] is None and h["similarity"] is None
                              and h["text_rank"] is not None for h in hybrid)
        starting = start_gateway(appliance, "model-change")   # a gateway that starts now says so in its log
        try:
            deadline = time.monotonic() + 30
            while "embedded by another model" not in starting.log() and time.monotonic() < deadline:
                time.sleep(0.2)
            warning = next(json.loads(line) for line in starting.log().splitlines()
                           if "embedded by another model" in line)
            assert warning["level"] == "WARNING" and warning["documents_by_model"]["retired-embedder"] == 1
        finally:
            starting.stop()
        again = upload(c, name, data, collection=collection)
        assert again.status_code == 201 and again.json()["status"] == "replaced", again.text
        after = search(c, "vector")
        assert {h["document_id"] for h in after["data"]} == {doc_id} and after["other_model_documents"] == 0
        assert c.delete(f"/v1/knowledge/documents/{doc_id}").status_code == 200


def test_a_long_section_is_cut_into_chunks_of_the_configured_size(appliance: Appliance, keys: dict,
                                                                    proxied: GatewayProcess) -> None:
    """MiniLM's tokenizer.json pads and truncates to 128: counted with those on, every text was 128 tokens,
    a whole section became one chunk, and the embedding role refused it (a 503 on most real documents)."""
    paragraphs = [f"Clause {i}: the account holder may withdraw up to {i * 100} euros a day at branch counters and "
                  f"partner machines, subject to the limits in schedule {i} and the fees listed for that product."
                  for i in range(1, 41)]
    doc = ("# Withdrawal limits\n\n" + "\n\n".join(paragraphs) + "\n").encode()
    with client(proxied.url, keys[A, "supervisor"]) as c:
        r = upload(c, "withdrawal-limits.md", doc)
        assert r.status_code == 201, r.text
        doc_id = r.json()["document"]["id"]
    with psycopg.connect(appliance.database_url) as conn:
        tokens = [t for (t,) in conn.execute("SELECT tokens FROM kb_chunks WHERE document_id = %s ORDER BY ord",
                                             (doc_id,)).fetchall()]
    assert len(tokens) >= 8 and max(tokens) <= 200 and len(set(tokens)) > 1, tokens   # 40 × ~40 tokens


def test_a_changed_file_is_replaced_even_when_its_new_bytes_match_another(keys: dict, proxied: GatewayProcess) -> None:
    old = b"# Current rates\n\nThe Easy Saver pays 1.10 percent a year.\n"
    new = b"# Current rates\n\nThe Easy Saver pays 1.60 percent a year from February.\n"
    with client(proxied.url, keys[A, "supervisor"]) as c:
        assert upload(c, "rates-2026-02.md", new).json()["status"] in ("created", "unchanged")
        current = upload(c, "rates-current.md", old).json()
        assert current["status"] in ("created", "unchanged")
        r = upload(c, "rates-current.md", new)           # the same bytes as rates-2026-02.md: still a replacement
        assert r.json()["status"] == "replaced" and r.json()["document"]["id"] == current["document"]["id"]
        chunks = c.get(f"/v1/knowledge/documents/{current['document']['id']}").json()["chunks"]
        assert all("1.10 percent" not in ch["text"] for ch in chunks)


def test_the_same_document_uploaded_twice_at_once_is_stored_once(keys: dict, proxied: GatewayProcess) -> None:
    """A double submit: both inserted, and the second hit the unique name (a 500). Now they take turns."""
    from concurrent.futures import ThreadPoolExecutor
    data = f"# Branch hours\n\nThe Leeds branch opens at {RUN[:2]}:00 on Saturdays.\n".encode()
    with client(proxied.url, keys[A, "supervisor"]) as c, ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: upload(c, f"leeds-hours-{RUN}.md", data), range(2)))
        assert sorted(r.status_code for r in results) == [200, 201], [r.text for r in results]
        assert sorted(r.json()["status"] for r in results) == ["created", "unchanged"]
        listed = c.get("/v1/knowledge/documents", params={"collection": "scratch"}).json()["data"]
        assert [d["source_name"] for d in listed].count(f"leeds-hours-{RUN}.md") == 1


def test_the_same_bytes_with_new_metadata_update_the_document(keys: dict, proxied: GatewayProcess) -> None:
    """Re-uploading is how an operator corrects an effective date or tags: they were ignored ('unchanged')."""
    data = f"# Card replacement\n\nA replacement card costs nothing and arrives in {RUN[:1]} working days.\n".encode()
    with client(proxied.url, keys[A, "supervisor"]) as c:
        first = upload(c, f"card-replacement-{RUN}.md", data).json()
        assert first["status"] == "created"
        r = upload(c, f"card-replacement-{RUN}.md", data, tags="cards,fees", effective_date="2026-02-01")
        assert r.json()["status"] == "updated" and r.json()["document"]["id"] == first["document"]["id"], r.text
        assert r.json()["document"]["tags"] == ["cards", "fees"] and r.json()["document"]["effective_date"] == "2026-02-01"
        hits = c.get("/v1/knowledge/search", params={"q": "replacement card", "collection": "scratch",
                                                     "tag": "cards"}).json()["data"]
        assert first["document"]["id"] in {h["document_id"] for h in hits}      # the chunks carry the new tags
        assert upload(c, f"card-replacement-{RUN}.md", data).json()["status"] == "unchanged"   # nothing new given


def test_tenants_never_see_each_others_documents(keys: dict, corpus: dict, proxied: GatewayProcess) -> None:
    some = next(iter(corpus.values()))
    with client(proxied.url, keys[B, "user"]) as b:
        assert b.get("/v1/knowledge/search", params={"q": QUESTIONS[0].text}).json()["data"] == []
        assert b.get(f"/v1/knowledge/documents/{some}").status_code == 404
        assert b.get("/v1/knowledge/documents").json()["data"] == []
        assert chat(b, QUESTIONS[0].text, knowledge=True).json()["choices"][0]["message"]["content"] == DONT_KNOW
    with client(proxied.url, keys[B, "supervisor"]) as b:
        assert b.delete(f"/v1/knowledge/documents/{some}").status_code == 404
    with client(proxied.url, keys[A, "user"]) as a:
        assert a.get(f"/v1/knowledge/documents/{some}").status_code == 200
        assert a.post("/v1/knowledge/documents", files={"file": ("x.md", b"# x")}).status_code == 403   # staff cannot upload


def bad_files(tmp: Path) -> list[tuple[str, bytes, int, str]]:
    blocks = [("h1", "Secret"), ("p", "Quarterly figures that only the board may read.")]
    encrypted = make_pdf(blocks, tmp / "locked.pdf", encrypted=True).read_bytes()
    good_pdf = make_pdf(blocks, tmp / "ok.pdf").read_bytes()
    good_docx = make_docx(blocks, tmp / "ok.docx").read_bytes()
    return [
        ("locked.pdf", encrypted, 422, "encrypted_document"),
        ("truncated.pdf", good_pdf[: len(good_pdf) // 3], 422, "malformed_document"),
        ("broken.docx", good_docx[:200] + b"\x00" * 300, 422, "malformed_document"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 415, "unsupported_format"),
        ("empty.txt", b"   \n\n ", 422, "empty_document"),
        ("huge.md", b"# Big\n\n" + b"lorem ipsum " * 30_000, 413, "document_too_large"),
    ]


def test_bad_files_get_a_clear_error_and_leave_nothing_behind(appliance: Appliance, keys: dict, proxied: GatewayProcess,
                                                              tmp_path: Path) -> None:
    def counts() -> tuple[int, int, int]:
        with psycopg.connect(appliance.database_url) as conn:
            return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("kb_documents", "kb_chunks")) + (
                conn.execute("SELECT count(*) FROM audit_log WHERE action = 'knowledge.ingest'").fetchone()[0],)

    before = counts()
    with client(proxied.url, keys[A, "supervisor"]) as c:
        for name, data, status, code in bad_files(tmp_path):
            r = upload(c, name, data, collection="bad")
            assert r.status_code == status and r.json()["error"]["code"] == code, (name, r.text)
            assert r.json()["error"]["message"]
        assert upload(c, "x.md", b"# fine", collection="Not A Name!").status_code == 400
    assert counts() == before
    with psycopg.connect(appliance.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM kb_collections WHERE name = 'bad'").fetchone()[0] == 0


def test_ids_in_paths_are_checked(keys: dict, proxied: GatewayProcess) -> None:
    with client(proxied.url, keys[A, "user"]) as c:
        r = c.get("/v1/knowledge/documents/not-a-uuid")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_document_id"
        assert c.get(f"/v1/knowledge/documents/{uuid.uuid4()}").json()["error"]["code"] == "document_not_found"
