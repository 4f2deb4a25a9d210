"""Which tenant runs which domain pack, and each pack's trained intent classifier.

Packs are read at start (a broken pack stops the gateway with the file, line and field at fault) and
re-read when their files change (checked at most every few seconds). A changed pack is validated before
it replaces the running one — a bad edit is logged and the last good pack keeps serving — and its
classifier is retrained (or taken from the cache when those examples were trained before).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from gateway.clients.embed import Embedder
from gateway.dialogue.intents import IntentClassifier, IntentModel, train
from gateway.dialogue.packs import Pack, PackError, load_pack

log = logging.getLogger("enclave.gateway.packs")


@dataclass
class LoadedPack:
    pack: Pack
    folder: Path
    mtime: float
    tenant_id: str | None = None
    classifier: IntentClassifier | None = None
    guard_model: IntentModel | None = None     # attack vs benign over the same embeddings (the guard's semantic check)


def _mtime(folder: Path) -> float:
    """The newest YAML file of the pack, in subfolders too (an include may live in one)."""
    return max((p.stat().st_mtime for p in folder.rglob("*.y*ml") if p.is_file()), default=0.0)


class PackRegistry:
    MAP_EVERY_S = 10.0   # how often tenants without a row yet are looked up again
    def __init__(self, folders: list[Path], pool: AsyncConnectionPool, embedder: Embedder | None,
                 cache_dir: Path | None, check_every_s: float = 3.0) -> None:
        self.pool, self.embedder, self.cache_dir, self.check_every_s = pool, embedder, cache_dir, check_every_s
        self.loaded: dict[str, LoadedPack] = {}          # by tenant slug
        self._by_tenant_id: dict[str, str] = {}          # tenant id → slug
        self._last_check = 0.0
        self._last_map = float("-inf")
        self._lock = asyncio.Lock()
        for folder in folders:
            pack = load_pack(folder)   # PackError stops the gateway: an operator must see it at start
            if pack.tenant in self.loaded:
                raise PackError(str(folder), [f"pack.yaml: tenant: '{pack.tenant}' already has a pack"])
            self.loaded[pack.tenant] = LoadedPack(pack, Path(folder), _mtime(Path(folder)))
            log.info("domain pack loaded", extra={"pack": pack.id, "tenant": pack.tenant, "sha256": pack.sha256[:12],
                                                  "intents": len(pack.intents), "flows": len(pack.flows)})

    def for_tenant_id(self, tenant_id: str) -> Pack | None:
        slug = self._by_tenant_id.get(tenant_id)
        return self.loaded[slug].pack if slug in self.loaded else None

    async def resolve(self, tenant_id: str) -> LoadedPack | None:
        """The tenant's pack, ready to use (reloaded if its files changed, classifier trained)."""
        if not self.loaded:
            return None
        slug = self._by_tenant_id.get(tenant_id)
        if slug is None and len(self._by_tenant_id) < len(self.loaded) \
                and time.monotonic() - self._last_map >= self.MAP_EVERY_S:
            await self.refresh_tenants()   # a pack's tenant created since: picked up without a restart
            slug = self._by_tenant_id.get(tenant_id)
        if slug is None:
            return None
        await self._maybe_reload()
        lp = self.loaded[slug]
        if lp.classifier is None:
            async with self._lock:
                if lp.classifier is None:
                    lp.guard_model = await self._train_guard(lp.pack)
                    lp.classifier = await self._train(lp.pack)
        return lp

    async def _map_tenants(self) -> None:
        self._last_map = time.monotonic()
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT slug, id FROM tenants WHERE slug = ANY(%s)", (list(self.loaded),))
            rows = await cur.fetchall()
        mapping = {str(tid): slug for slug, tid in rows}
        for tid, slug in mapping.items():
            self.loaded[slug].tenant_id = tid
        self._by_tenant_id = mapping   # one assignment: readers never see it half-built

    async def tenant_ids(self) -> list[str]:
        """Ids of the tenants this gateway has packs for (looked up once they exist)."""
        if len(self._by_tenant_id) < len(self.loaded) and time.monotonic() - self._last_map >= self.MAP_EVERY_S:
            await self.refresh_tenants()
        return list(self._by_tenant_id)

    async def refresh_tenants(self) -> None:
        await self._map_tenants()

    async def _train(self, pack: Pack) -> IntentClassifier:
        if self.embedder is None:
            raise RuntimeError("no embedding model configured: intents cannot be classified")
        examples = {name: list(i.examples) for name, i in pack.intents.items()}
        model = await train(examples, self.embedder.embed, self.embedder.model, self.cache_dir)
        # A caller's utterance can be longer than the embedding model reads: cut to its end, not refused.
        return IntentClassifier(model, functools.partial(self.embedder.embed, truncate=True))

    async def _train_guard(self, pack: Pack) -> IntentModel | None:
        """The guard's classifier: the injection corpus' attacks against its benign look-alikes plus this
        pack's own examples (what its customers really say must never look like an attack)."""
        if self.embedder is None or pack.guard.semantic_weight <= 0:
            return None
        from gateway.safety.injection_corpus import ATTACKS, BENIGN

        benign = list(BENIGN) + [e for i in pack.intents.values() for e in i.examples]
        return await train({"attack": list(ATTACKS), "benign": benign}, self.embedder.embed, self.embedder.model,
                           self.cache_dir)

    async def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._last_check < self.check_every_s:
            return
        self._last_check = now
        for slug, lp in list(self.loaded.items()):
            mtime = _mtime(lp.folder)
            if mtime == lp.mtime:
                continue
            try:
                pack = load_pack(lp.folder)
            except PackError as e:
                lp.mtime = mtime   # don't re-log every check; the last good pack keeps serving
                log.error("changed domain pack is invalid; keeping the previous one", extra={"problems": e.problems})
                continue
            except Exception:  # a loader bug must not fail every turn of every tenant, check after check
                lp.mtime = mtime
                log.exception("changed domain pack could not be loaded; keeping the previous one",
                              extra={"pack": lp.pack.id})
                continue
            if pack.tenant != slug:
                log.error("a pack may not change its tenant at run time; restart the gateway",
                          extra={"pack": pack.id, "tenant": pack.tenant})
                lp.mtime = mtime
                continue
            changed = pack.sha256 != lp.pack.sha256
            classifier = await self._train(pack) if changed else lp.classifier
            guard_model = await self._train_guard(pack) if changed else lp.guard_model
            self.loaded[slug] = LoadedPack(pack, lp.folder, mtime, lp.tenant_id, classifier, guard_model)
            log.info("domain pack reloaded", extra={"pack": pack.id, "sha256": pack.sha256[:12]})
