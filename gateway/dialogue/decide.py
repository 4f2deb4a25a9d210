"""Stages 3 and 4 for sessions of a tenant with a domain pack: understand (intent + entities) and decide
(continue a flow, start one, answer, hand off).

Deterministic where it matters: a flow's prompts, confirmations and tool results are the pack's own
text, and anything the LLM contributes (an intent when the classifier is unsure, a free-text entity, a
tool's arguments, a hand-off summary) comes through schema-constrained output that is validated again.
Everything else gets a grounded LLM answer under the pack's persona, with the turn's user text fenced
when the guard found it suspicious.

``DialogueState`` is the session's working memory; ``Record`` stores it (redacted) with the turn.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.clients.llm import LLMChain
from gateway.dialogue import entities as ents
from gateway.dialogue.actions import Actions, originals_json, schema_errors, schema_problem_paths
from gateway.dialogue.intents import IntentScore
from gateway.dialogue.packs import Flow, Pack, Slot, Step
from gateway.dialogue.registry import PackRegistry
from gateway.dialogue.render import render, render_value
from gateway.dialogue.sentiment import frustration
from gateway.dialogue.spoken import spoken
from gateway.dialogue.structured import call_tool, complete_json
from gateway.dialogue.turn import Turn
from gateway.errors import InvalidRequest
from gateway.knowledge.ground import KnowledgeSpec
from gateway.knowledge.retrieve import SearchFilter
from gateway.safety.redact import Redactor
from gateway.store import dialogue as repo

log = logging.getLogger("enclave.gateway.decide")

MIN_SIMILARITY = 0.3      # below this, nothing in the pack resembles the utterance: no intent at all


@dataclass
class DialogueState:
    flow: str | None = None
    instance: str | None = None        # one run of a flow: part of every idempotency key it produces
    step: int = 0
    slots: dict[str, Any] = field(default_factory=dict)
    awaiting: str | None = None        # "slot:<name>" | "confirm"
    confirmed_step: int | None = None
    reprompts: int = 0
    low_confidence: int = 0            # turns in a row nobody understood
    flow_digest: str | None = None     # the flow's definition when the run started (packs reload while it runs)

    @classmethod
    def from_json(cls, data: dict | None) -> DialogueState:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def clear_flow(self) -> None:
        self.flow, self.instance, self.step, self.slots, self.awaiting, self.confirmed_step, self.reprompts = \
            None, None, 0, {}, None, None, 0
        self.flow_digest = None

    def runs_on(self, pack: Pack) -> bool:
        """Whether the run in progress can go on under the pack as loaded now. A pack reloads when its files
        change; a run's step index, awaited slot and confirmation mean nothing in an edited flow (step 2 may
        now be the transfer the customer never confirmed), so an edited or removed flow ends the run."""
        flow = pack.flows.get(self.flow or "")
        if flow is None:
            return False
        if self.flow_digest is not None:
            return self.flow_digest == flow_digest(flow)
        # A run started before digests were kept: go on only where its position still exists.
        slot_ok = not (self.awaiting or "").startswith("slot:") or self.awaiting[5:] in flow.slots
        return self.step < len(flow.steps) and slot_ok


def flow_digest(flow: Flow) -> str:
    return hashlib.sha256(flow.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class Understood:
    intent: str | None
    confidence: float
    similarity: float
    source: str                         # classifier | llm | none
    candidates: list[tuple[str, float]]
    ms: float

    def to_json(self) -> dict[str, Any]:
        return {"intent": self.intent, "confidence": round(self.confidence, 4), "similarity": round(self.similarity, 4),
                "source": self.source, "candidates": [[c, round(p, 4)] for c, p in self.candidates], "ms": round(self.ms, 2)}


class LoadDialogue:
    """Before the guard: which pack (if any) runs this session, its state, and whether a human has it."""

    name = "dialogue"

    def __init__(self, registry: PackRegistry, pool) -> None:
        self.registry, self.pool = registry, pool

    async def __call__(self, turn: Turn) -> None:
        lp = await self.registry.resolve(turn.tenant_id)
        if lp is None:
            return
        if turn.is_tool_result or turn.params.get("tools") or turn.params.get("tool_choice"):
            # The pack decides which tools exist: a client may not add its own (or answer for them).
            raise InvalidRequest("tools_not_allowed", "this tenant's assistant runs a domain pack and calls only the "
                                 "pack's tools; send messages without tools", "tools")
        turn.pack = lp
        client_system = [m for m in turn.extra_messages if m.get("role") in ("system", "developer")]
        if (turn.session.get("system_prompt") and turn.session_is_new) or client_system:
            turn.dialogue["client_system_prompt_ignored"] = True
        # Nothing the client sends stands beside the pack's persona as an instruction.
        turn.extra_messages = [m for m in turn.extra_messages if m.get("role") not in ("system", "developer")]
        turn.mode = turn.session.get("mode", "bot")
        if not turn.session_is_new:
            async with self.pool.connection() as conn:
                turn.dialogue_state = DialogueState.from_json(await repo.load_state(conn, turn.tenant_id, turn.session_id))
        else:
            turn.dialogue_state = DialogueState()
        # The pack's persona is the system prompt: nothing the client sends replaces it.
        turn.session = {**turn.session, "system_prompt": lp.pack.system_prompt(turn.channel)}
        if turn.knowledge is None and lp.pack.knowledge is not None:
            k = lp.pack.knowledge
            turn.knowledge = KnowledgeSpec(SearchFilter(collections=tuple(k.collections), tags=tuple(k.tags)))


class Understand:
    name = "understand"

    def __init__(self, chain: LLMChain, redactor: Redactor, llm_timeout_s: float = 15.0) -> None:
        self.chain, self.redactor, self.llm_timeout_s = chain, redactor, llm_timeout_s

    async def __call__(self, turn: Turn) -> None:
        if turn.pack is None or turn.mode != "bot" or turn.canned_reply is not None or not turn.text:
            return
        pack: Pack = turn.pack.pack
        t0 = time.perf_counter()
        classifier = turn.pack.classifier
        vectors = turn.text_vector if turn.text_vector is not None else await classifier.vectors([turn.text])
        score: IntentScore = classifier.model.scores(vectors)[0]
        und = pack.understanding
        intent, source = None, "none"
        if score.similarity >= MIN_SIMILARITY and score.confidence >= und.threshold:
            intent, source = score.intent, "classifier"
        elif und.llm_fallback and score.similarity >= MIN_SIMILARITY and score.confidence >= und.llm_floor:
            intent = await self.llm_intent(pack, turn, [c for c, _ in score.ranked])
            source = "llm" if intent else "none"
        turn.understood = Understood(intent, score.confidence, score.similarity, source, list(score.ranked),
                                     (time.perf_counter() - t0) * 1000)

    async def llm_intent(self, pack: Pack, turn: Turn, candidates: list[str]) -> str | None:
        """The LLM picks among the classifier's best candidates (or none): it disambiguates, it does not
        invent intents. The engine is held to the enum by the JSON schema."""
        options = "\n".join(f"- {c}: {pack.intents[c].description}" for c in candidates)
        schema = {"type": "object", "properties": {"intent": {"type": "string", "enum": [*candidates, "none"]}},
                  "required": ["intent"], "additionalProperties": False}
        messages = [{"role": "system", "content": "Classify the customer's message. Answer with the one intent that "
                     f"fits, or none.\nIntents:\n{options}"}, {"role": "user", "content": turn.text}]
        got = await complete_json(self.chain, messages, schema, name="intent", max_tokens=40, timeout_s=self.llm_timeout_s)
        value = (got or {}).get("intent")
        return value if value in candidates else None


# -- deciding -------------------------------------------------------------------------------------------------

@dataclass
class Reply:
    parts: list[str] = field(default_factory=list)
    llm: bool = False                   # generate with the LLM (after the parts, if any)

    def say(self, text: str) -> None:
        if text:
            self.parts.append(text)


def _valid(slot: Slot, entity_type: str, value: Any, today: date) -> bool:
    v = slot.validate_
    if entity_type in ("amount", "integer"):
        try:
            number = Decimal(str(value["value"] if isinstance(value, dict) else value))
        except (InvalidOperation, KeyError, TypeError):
            return False
        if (v.min is not None and number < v.min) or (v.max is not None and number > v.max):
            return False
        if entity_type == "amount" and v.currencies and value.get("currency") not in v.currencies:
            return False
    if entity_type == "date":
        try:
            d = date.fromisoformat(str(value))
        except ValueError:
            return False
        if not v.allow_future and d > today:
            return False
        if v.max_age_days is not None and (today - d).days > v.max_age_days:
            return False
    return True


def _word_before(text: str, start: int) -> str:
    words = re.findall(r"[a-z]+", text[:start].lower())
    words = [w for w in words if w not in ("my", "the", "your", "our", "a")]
    return words[-1] if words else ""


class Decide:
    name = "decide"

    def __init__(self, actions: Actions, chain: LLMChain, redactor: Redactor, pool, *, llm_timeout_s: float = 15.0,
                 today=date.today) -> None:
        self.actions, self.chain, self.redactor, self.pool = actions, chain, redactor, pool
        self.llm_timeout_s, self.today = llm_timeout_s, today

    async def __call__(self, turn: Turn) -> None:
        if turn.pack is None:
            return
        if turn.mode == "human":
            turn.relay = True          # a colleague has this session: no assistant, the message goes to them
            return
        if turn.canned_reply is not None or not turn.text:
            return
        pack: Pack = turn.pack.pack
        state: DialogueState = turn.dialogue_state
        understood: Understood = turn.understood
        # The owner's values fill the slots; anyone else writing into the session (an agent, an admin) fills
        # them with placeholders, which a reply then shows them as "[email withheld]", as the model's would.
        original = self.redactor.originals(turn.text, turn.vault) if turn.vault is not None and turn.caller_is_owner \
            else turn.text
        reply = Reply()
        decision = await self.decide(turn, pack, state, understood, original, reply)
        turn.dialogue = {**turn.dialogue, "decision": decision,
                         "understood": understood.to_json() if understood else None,
                         "flow": state.flow, "step": state.step, "awaiting": state.awaiting,
                         "actions": turn.dialogue.get("actions", [])}
        text = "\n\n".join(reply.parts)
        if turn.channel in ("voice", "sip"):   # the pack's text as a caller hears it: numbers in words, no markup
            text = spoken(text, pack.language)
        elif turn.vault is not None:
            # Values rendered into the pack's text go back to placeholders: the reply is restored on its way
            # out like the model's, so the owner sees a card masked (•••• 1111) and anyone else "[… withheld]".
            text = self.redactor.redact(text, turn.vault)
        if reply.llm:
            if text:
                turn.reply_prefix = text + "\n\n"
        else:
            turn.canned_reply = text or pack.canned.not_understood

    async def decide(self, turn: Turn, pack: Pack, state: DialogueState, u: Understood, text: str, reply: Reply) -> str:
        intent = u.intent
        esc = pack.escalation
        # Escalations first: they apply whatever the session was doing.
        if intent and intent == esc.request_intent:
            return await self.handoff(turn, pack, state, "requested", intent, reply)
        if intent and intent in esc.always_human:
            return await self.handoff(turn, pack, state, "always_human", intent, reply)
        if frustration(text) >= esc.frustration_threshold:
            return await self.handoff(turn, pack, state, "frustration", intent, reply)
        if state.flow and state.runs_on(pack):
            return await self.continue_flow(turn, pack, state, u, text, reply)
        if state.flow:
            log.warning("flow run ended: the pack's flow changed under it",
                        extra={"session_id": str(turn.session_id), "flow": state.flow, "step": state.step})
            state.clear_flow()
            state.low_confidence = 0
            reply.say(pack.canned.flow_changed)
            return "flow_changed"
        state.clear_flow()
        if intent is None:
            state.low_confidence += 1
            if state.low_confidence >= esc.low_confidence_turns:
                return await self.handoff(turn, pack, state, "low_confidence", None, reply)
            reply.llm = True
            return "answer"
        state.low_confidence = 0
        if intent == pack.understanding.cancel_intent:
            reply.say(pack.canned.cancelled)
            return "cancel"
        return await self.start_intent(turn, pack, state, intent, text, reply)

    async def start_intent(self, turn: Turn, pack: Pack, state: DialogueState, intent: str, text: str, reply: Reply) -> str:
        spec = pack.intents[intent]
        if spec.flow:
            state.clear_flow()
            state.flow, state.instance = spec.flow, str(uuid.uuid4())
            state.flow_digest = flow_digest(pack.flows[spec.flow])
            state.slots.update(spec.sets)
            await self.fill_from(turn, pack, pack.flows[spec.flow], state, text, only=None, llm=True)
            await self.run_steps(turn, pack, state, reply)
            return f"flow:{spec.flow}"
        if spec.reply:
            reply.say(spec.reply.strip())
            return "reply"
        reply.llm = True
        return "answer"

    async def continue_flow(self, turn: Turn, pack: Pack, state: DialogueState, u: Understood, text: str, reply: Reply) -> str:
        flow = pack.flows[state.flow]
        intent = u.intent
        if intent and intent == pack.understanding.cancel_intent and not (state.awaiting == "confirm" and ents.parse_yes_no(text) is not None):
            state.clear_flow()
            reply.say(pack.canned.cancelled)
            return "cancel"
        if state.awaiting == "confirm":
            yes = ents.parse_yes_no(text)
            if yes is True:
                state.confirmed_step, state.awaiting, state.reprompts = state.step, None, 0
                await self.run_steps(turn, pack, state, reply)
                return "confirmed"
            if yes is False:
                state.clear_flow()
                reply.say(pack.canned.cancelled)
                return "declined"
            return await self.not_filled(turn, pack, state, flow, u, reply)
        slot_name = state.awaiting.removeprefix("slot:") if state.awaiting else None
        if slot_name and pack.entity_type(flow.slots[slot_name].entity)[0] == "text" and intent \
                and intent not in {n for n, i in pack.intents.items() if i.flow == state.flow} and flow.allow_digressions:
            # A free-text slot takes any words: a question the classifier recognised as another intent ("is there
            # a fee for a dispute?" asked for the merchant) is a digression, not the merchant's name.
            return await self.not_filled(turn, pack, state, flow, u, reply)
        filled = await self.fill_from(turn, pack, flow, state, text, only=slot_name, llm=False)
        if slot_name and filled.get(slot_name) is True:
            state.reprompts = 0
            await self.fill_from(turn, pack, flow, state, text, only=None, llm=False)   # other slots said in passing
            await self.run_steps(turn, pack, state, reply)
            return "slot_filled"
        if slot_name and filled.get(slot_name) is False:   # a value, but not a valid one
            return await self.reprompt(turn, pack, state, flow.slots[slot_name], reply, invalid=True)
        return await self.not_filled(turn, pack, state, flow, u, reply)

    async def not_filled(self, turn: Turn, pack: Pack, state: DialogueState, flow: Flow, u: Understood, reply: Reply) -> str:
        """The answer was not what the flow asked for: a digression (answer it, then come back) or a re-ask."""
        intent = u.intent
        current = {name for name, i in pack.intents.items() if i.flow == state.flow}
        if intent and intent not in current and flow.allow_digressions:
            spec = pack.intents[intent]
            prompt = self.current_prompt(pack, state)
            back = render(pack.canned.back_to_flow, {"prompt": prompt})
            if spec.flow:   # another flow: finish this one first (or cancel it)
                reply.say(f"Let's finish this first, or say cancel to stop. {prompt}")
                return f"digression_deferred:{intent}"
            if spec.reply:
                reply.say(spec.reply.strip())
                reply.say(back)
                return f"digression:{intent}"
            reply.llm = True
            turn.reply_suffix = "\n\n" + back
            return f"digression:{intent}"
        if state.awaiting == "confirm":
            state.reprompts += 1
            if state.reprompts > pack.escalation.max_reprompts:
                return await self.handoff(turn, pack, state, "reprompts", intent, reply)
            reply.say(f"Please answer yes or no. {self.current_prompt(pack, state)}")
            return "reask_confirm"
        slot = flow.slots[state.awaiting.removeprefix("slot:")] if state.awaiting else None
        if slot is None:
            await self.run_steps(turn, pack, state, reply)
            return "resume"
        return await self.reprompt(turn, pack, state, slot, reply, invalid=False)

    async def reprompt(self, turn: Turn, pack: Pack, state: DialogueState, slot: Slot, reply: Reply, *, invalid: bool) -> str:
        state.reprompts += 1
        if state.reprompts > pack.escalation.max_reprompts:
            return await self.handoff(turn, pack, state, "reprompts", None, reply)
        if invalid:
            reply.say(render(slot.invalid, {**state.slots, "prompt": slot.prompt}))
        else:
            reply.say(f"{pack.canned.not_understood} {slot.prompt}")
        return "reask_invalid" if invalid else "reask"

    def current_prompt(self, pack: Pack, state: DialogueState) -> str:
        flow = pack.flows[state.flow]
        if state.awaiting == "confirm":
            return render(flow.steps[state.step].confirm, state.slots)
        if state.awaiting and state.awaiting.startswith("slot:"):
            return flow.slots[state.awaiting[5:]].prompt
        return ""

    async def fill_from(self, turn: Turn, pack: Pack, flow: Flow, state: DialogueState, text: str, *, only: str | None,
                        llm: bool) -> dict[str, bool]:
        """Slots found in ``text``: name → True (filled) / False (found, invalid). ``only``: the slot being
        asked for, where a free-text answer counts; otherwise typed values said in passing (and, on the
        first utterance, LLM extraction for entities the pack marks ``extract: llm``)."""
        found: dict[str, bool] = {}
        today = self.today()
        used: set[tuple[int, int]] = set()
        for name, slot in flow.slots.items():
            if name in state.slots or (only is not None and name != only):
                continue
            etype, edef = pack.entity_type(slot.entity)
            options = edef.options if edef else ()
            if etype == "text" and only is None:
                if llm and edef is not None and edef.extract == "llm":
                    value = await self.llm_entity(turn, name, edef.description or name, text)
                    if value:
                        state.slots[name] = value
                        found[name] = True
                continue
            hits = [h for h in ents.extract(text, etype, today=today, default_currency=pack.default_currency,
                                            options=options) if (h.start, h.end) not in used]
            if slot.after:
                cued = [h for h in hits if _word_before(text, h.start) in slot.after]
                hits = cued or (hits if only == name else [])
            if not hits:
                continue
            if only != name and len(hits) > 1:
                # Two values of the slot's type said in passing ("my balance is 500 euros, move 200"): which one
                # is meant is not known, and the first was taken. The flow asks for it instead.
                continue
            used.add((hits[0].start, hits[0].end))
            value = hits[0].value
            if _valid(slot, etype, value, today):
                state.slots[name] = value
                found[name] = True
            else:
                found[name] = False
        return found

    async def llm_entity(self, turn: Turn, name: str, description: str, text: str) -> str | None:
        schema = {"type": "object", "properties": {"value": {"type": ["string", "null"], "maxLength": 120}},
                  "required": ["value"], "additionalProperties": False}
        messages = [{"role": "system", "content": f"Extract {description} from the customer's message, or null if it "
                     "is not there. Copy it as written."}, {"role": "user", "content": turn.text}]
        got = await complete_json(self.chain, messages, schema, name=name, max_tokens=60, timeout_s=self.llm_timeout_s)
        value = (got or {}).get("value")
        if not isinstance(value, str) or not value.strip():
            return None
        # The model saw placeholders: the slot holds the owner's value (redacted again when stored).
        return self.redactor.originals(value.strip(), turn.vault) if turn.vault is not None else value.strip()

    async def run_steps(self, turn: Turn, pack: Pack, state: DialogueState, reply: Reply) -> None:
        flow = pack.flows[state.flow]
        while state.flow is not None and state.step < len(flow.steps):
            step = flow.steps[state.step]
            kind = step.kind
            if kind == "ask":
                if step.ask in state.slots or not flow.slots[step.ask].required:
                    state.step += 1
                    continue
                state.awaiting = f"slot:{step.ask}"
                reply.say(flow.slots[step.ask].prompt)
                return
            if kind == "confirm":
                if state.confirmed_step == state.step:
                    state.step += 1
                    continue
                state.awaiting = "confirm"
                reply.say(render(step.confirm, state.slots))
                return
            if kind == "handoff":
                await self.handoff(turn, pack, state, step.handoff or "flow", None, reply)
                return
            if kind == "say":
                reply.say(render(step.say, state.slots))
                state.step += 1
                continue
            if not await self.call(turn, pack, state, step, reply):
                return
            state.step += 1
        state.clear_flow()

    async def call(self, turn: Turn, pack: Pack, state: DialogueState, step: Step, reply: Reply) -> bool:
        """One tool call; False when the flow stops here (failed, waiting for approval or a webhook)."""
        tool = pack.tools[step.call]
        # Slots filled on earlier turns come back from the stored state as placeholders: the tool gets the
        # owner's values (in memory only; the actions table keeps them redacted).
        args = render_value(step.args, state.slots)
        if turn.vault is not None:
            args = originals_json(args, self.redactor, turn.vault)
        if step.llm_args:
            llm, via = await call_tool(self.chain, self.tool_messages(turn, pack), step.call, tool.description,
                                       tool.parameters, timeout_s=self.llm_timeout_s)
            turn.dialogue["llm_args"] = {"tool": step.call, "via": via, "valid": llm is not None}
            if llm is not None and turn.vault is not None:   # placeholders the model copied → the owner's values
                llm = originals_json(llm, self.redactor, turn.vault)
            args = {**(llm or {}), **args}
        problems = schema_errors(tool, args)
        if problems:
            # Only where and which rule: the messages quote the (real) values.
            log.warning("tool arguments invalid", extra={"tool": step.call, "problems": schema_problem_paths(tool, args)[:3]})
            reply.say(pack.canned.tool_failed)
            turn.dialogue.setdefault("actions", []).append({"tool": step.call, "state": "invalid_args"})
            state.clear_flow()
            return False
        report = {"say": step.say, "errors": step.errors, "slots": state.slots, "channel": turn.channel}
        outcome = await self.actions.request(pack=pack, tool_name=step.call, args=args, tenant_id=turn.tenant_id,
                                             session_id=turn.session_id, vault=turn.vault, instance=state.instance or "",
                                             step=state.step, flow=state.flow or "", actor=turn.actor, report=report)
        turn.dialogue.setdefault("actions", []).append({"tool": step.call, "state": outcome.state,
                                                        "action_id": outcome.action_id, "duplicate": outcome.duplicate})
        if turn.session_is_new and outcome.action_id:
            pass   # the action row refers to the session by id; the session row lands with this turn
        if outcome.state == "executed":
            reply.say(render(step.say, state.slots, outcome.output or {}))
            return True
        if outcome.state == "awaiting_approval":
            reply.say(pack.canned.awaiting_approval)
        elif outcome.state in ("running", "executing"):
            reply.say(pack.canned.accepted)
        else:
            template = step.errors.get(outcome.error_code or "")
            reply.say(render(template, state.slots) if template else pack.canned.tool_failed)
        state.clear_flow()
        return False

    def tool_messages(self, turn: Turn, pack: Pack) -> list[dict]:
        return [{"role": "system", "content": f"{pack.system_prompt(turn.channel)}\nFill in the tool's arguments from "
                 "the customer's request."}, {"role": "user", "content": turn.text}]

    async def handoff(self, turn: Turn, pack: Pack, state: DialogueState, reason: str, intent: str | None,
                      reply: Reply) -> str:
        summary, by = await self.summarise(turn, pack, reason, intent, state)
        turn.handoff = {"reason": reason, "intent": intent, "entities": dict(state.slots), "summary": summary,
                        "summary_by": by}
        state.clear_flow()
        state.low_confidence = 0
        reply.say(pack.canned.handoff)
        return f"handoff:{reason}"

    async def summarise(self, turn: Turn, pack: Pack, reason: str, intent: str | None,
                        state: DialogueState) -> tuple[str, str]:
        """For the agent: the LLM's summary (structured), or a template when the LLM cannot answer."""
        template = (f"Customer asked to be passed to a colleague ({reason.replace('_', ' ')}). "
                    f"Intent: {intent or 'unclear'}. Flow: {state.flow or 'none'}. "
                    f"Details: {', '.join(f'{k}={v}' for k, v in state.slots.items()) or 'none'}. "
                    f"Last message: {turn.text[:300]}")
        history = []
        if not turn.session_is_new:
            async with self.pool.connection() as conn:
                from gateway.store import sessions as sessions_repo
                rows = await sessions_repo.list_turns(conn, turn.tenant_id, turn.session_id,
                                                      after_seq=max(0, turn.session.get("turn_count", 0) - 10))
            history = [f"{r['role']}: {r['content'][:300]}" for r in rows]
        transcript = "\n".join([*history, f"user: {turn.text}"])
        schema = {"type": "object", "properties": {"summary": {"type": "string", "minLength": 1, "maxLength": 600}},
                  "required": ["summary"], "additionalProperties": False}
        got = await complete_json(self.chain, [
            {"role": "system", "content": "Summarise this customer conversation for the bank colleague taking it over: "
             "what the customer wants, what has been done, what is open. Two or three sentences."},
            {"role": "user", "content": transcript}], schema, name="handoff_summary", max_tokens=160,
            timeout_s=self.llm_timeout_s)
        if got and got.get("summary", "").strip():
            return got["summary"].strip(), "llm"
        return template, "template"
