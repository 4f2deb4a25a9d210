"""Domain packs: one tenant's assistant described in YAML — persona and prompts per channel, intents with
examples, entities, flows, tools, escalation rules and canned replies (docs/dialogue.md is the reference).

A pack is a folder: ``pack.yaml`` plus the files it ``include``s. Loading validates all of it with pydantic
and reports every problem with the file, line and field it is about, so an operator fixes a pack from the
error alone. Cross-references (a flow's tool, an intent's flow, a step's slot) are checked too.
"""

from __future__ import annotations

import hashlib
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.dialogue.entities import ENTITY_TYPES
from gateway.dialogue.schemas import outside_refs

Channel = Literal["chat", "voice"]
_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_TEMPLATE_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)(?:\.[a-z0-9_]+)*\}")
_BRACES = re.compile(r"\{[^{}\s]*\}")   # what looks like a field: {word}, {Word}, {a.b}
_ENV = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}")


class PackError(ValueError):
    """A pack that does not load: every problem, each with where it is."""

    def __init__(self, pack: str, problems: list[str]) -> None:
        super().__init__(f"domain pack {pack} is invalid:\n  " + "\n  ".join(problems))
        self.pack, self.problems = pack, problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityDef(_Model):
    """A pack-specific entity: one of the built-in types, possibly narrowed to options."""

    type: str
    options: list[str] = Field(default_factory=list)
    extract: Literal["rules", "llm"] = "rules"   # llm: structured extraction for what no rule finds
    description: str = ""

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ENTITY_TYPES:
            raise ValueError(f"unknown entity type '{v}' (one of {', '.join(sorted(ENTITY_TYPES))})")
        return v


class Validation(_Model):
    min: Decimal | None = None              # amounts and integers
    max: Decimal | None = None
    currencies: list[str] | None = None     # amounts
    max_age_days: int | None = None         # dates: not older than this
    allow_future: bool = False              # dates


class Slot(_Model):
    entity: str                             # a built-in type or a pack entity
    prompt: str
    invalid: str = "Sorry, that doesn't look right. {prompt}"
    validate_: Validation = Field(default_factory=Validation, alias="validate")
    required: bool = True
    # Words that introduce this slot's value ("from", "to"): with two slots of one type in a flow, they
    # tell which value said in passing goes where ("move 50 from savings to checking").
    after: list[str] = Field(default_factory=list)


class Step(_Model):
    """Exactly one of: ask a slot, confirm, call a tool, say something, hand off."""

    ask: str | None = None
    confirm: str | None = None
    call: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)   # templates over slots: "{amount.value}"
    llm_args: bool = False                  # the LLM fills the other arguments (structured tool call)
    say: str | None = None                  # after call: the success reply ({result.x} available)
    errors: dict[str, str] = Field(default_factory=dict)  # tool error code → reply
    handoff: str | None = None              # the reason

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("ask", "confirm", "call", "handoff") if getattr(self, k) is not None]
        if len(kinds) > 1 or (not kinds and self.say is None):
            raise ValueError("a step is exactly one of ask, confirm, call (with optional say), say, handoff")
        return self

    @property
    def kind(self) -> str:
        for k in ("ask", "confirm", "call", "handoff"):
            if getattr(self, k) is not None:
                return k
        return "say"


class Flow(_Model):
    description: str = ""
    slots: dict[str, Slot] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    allow_digressions: bool = True


class HttpEndpoint(_Model):
    url: str
    method: Literal["POST", "GET"] = "POST"
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _absolute(self) -> HttpEndpoint:
        # After ${VAR} substitution: an unset variable without a default left "/tools/transfer", which loaded
        # and failed on every call (and a call that never left was taken for one whose outcome is unknown).
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an absolute http(s) URL with a host, got {self.url[:120]!r} (is an "
                             "environment variable it names unset?)")
        return self


class ApprovalRule(_Model):
    """When a call waits for a supervisor: always, or when an amount argument is over a limit."""

    always: bool = False
    amount_arg: str | None = None
    amount_over: Decimal | None = None

    def reason(self, args: dict[str, Any]) -> str | None:
        if self.always:
            return "approval always required"
        if self.amount_arg and self.amount_over is not None:
            try:
                amount = Decimal(str(args.get(self.amount_arg)))
            except Exception:
                return f"{self.amount_arg} is not a number"
            if amount > self.amount_over:
                return f"{self.amount_arg} {amount} is over {self.amount_over}"
        return None


class Tool(_Model):
    description: str
    parameters: dict[str, Any]              # JSON schema of the arguments
    http: HttpEndpoint | None = None        # an endpoint on the premises
    python: str | None = None               # or "module:function" (sync or async, takes the args dict)
    side_effect: Literal["read", "write", "money"] = "read"
    approval: ApprovalRule = Field(default_factory=ApprovalRule)

    @model_validator(mode="after")
    def _target(self) -> Tool:
        if (self.http is None) == (self.python is None):
            raise ValueError("a tool needs exactly one of http or python")
        if self.python is not None and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", self.python):
            raise ValueError("python must be 'module:function'")
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as e:
            raise ValueError(f"parameters is not a valid JSON schema: {e.message}") from e
        rule = self.approval
        if (rule.amount_arg is None) != (rule.amount_over is None):
            raise ValueError("approval needs amount_arg and amount_over together (one alone never asks for approval)")
        props = self.parameters.get("properties")
        if rule.amount_arg is not None and isinstance(props, dict) and rule.amount_arg not in props:
            raise ValueError(f"approval.amount_arg '{rule.amount_arg}' is not one of the tool's parameters")
        if refs := outside_refs(self.parameters):
            raise ValueError(f"parameters refers outside itself ({refs[0][:80]}): only local references (#/…) are "
                             "allowed; nothing is fetched")
        return self


class Intent(_Model):
    description: str = ""
    examples: list[str] = Field(min_length=3)
    flow: str | None = None                 # starts this flow
    sets: dict[str, str] = Field(default_factory=dict)   # slots the intent itself fills (stolen → reason)
    reply: str | None = None                # or answers with this text
    # neither: a grounded LLM answer


class Escalation(_Model):
    request_intent: str | None = None       # "I want a person"
    always_human: list[str] = Field(default_factory=list)
    low_confidence_turns: int = Field(default=3, ge=1)
    frustration_threshold: float = Field(default=0.6, gt=0, le=1)
    max_reprompts: int = Field(default=2, ge=1)   # invalid answers to one slot before a hand-off


class Understanding(_Model):
    threshold: float = Field(default=0.55, gt=0, lt=1)      # classifier confidence to act on alone
    llm_floor: float = Field(default=0.2, ge=0, lt=1)       # below it: no intent, no LLM call either
    llm_fallback: bool = True
    cancel_intent: str | None = None


class Guard(_Model):
    block_at: float = Field(default=0.75, gt=0, le=1)
    fence_at: float = Field(default=0.4, gt=0, le=1)
    semantic_weight: float = Field(default=0.5, ge=0, le=1)   # the embedding classifier's say; 0 turns it off


class Canned(_Model):
    blocked: str = "I can't help with that request. If you need something else, just ask."
    cancelled: str = "Okay, I've stopped that. Is there anything else I can help with?"
    tool_failed: str = "Sorry, I couldn't complete that just now. Nothing was changed. Please try again later."
    awaiting_approval: str = "That needs a colleague's approval. I'll let you know here as soon as it's decided."
    approved_done: str = "Update: your request has been approved and completed."
    rejected: str = "Update: a colleague reviewed your request and could not approve it."
    handoff: str = "I'm connecting you with a colleague. They'll see our conversation so far."
    agent_wait: str = "A colleague will be with you shortly."
    agent_left: str = "You're back with the virtual assistant. How else can I help?"
    back_to_flow: str = "Now, back to where we were: {prompt}"
    not_understood: str = "Sorry, I didn't understand that."
    accepted: str = "Thanks, that's in progress. I'll let you know here when it's done."
    outcome_unknown: str = ("I still couldn't confirm whether that went through. A colleague will check it and get "
                            "back to you here; please don't repeat the request in the meantime.")
    flow_changed: str = ("Sorry, this service was updated while we were talking, so I've stopped what we were doing. "
                         "Nothing was changed. What would you like to do?")


class Knowledge(_Model):
    collections: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class Pack(_Model):
    id: str = Field(pattern=_NAME.replace("_", "_-"))
    version: int | str = 1
    tenant: str
    name: str
    language: str = "en"
    default_currency: str = "EUR"
    persona: str
    prompts: dict[Channel, str]
    knowledge: Knowledge | None = None
    understanding: Understanding = Field(default_factory=Understanding)
    escalation: Escalation = Field(default_factory=Escalation)
    guard: Guard = Field(default_factory=Guard)
    canned: Canned = Field(default_factory=Canned)
    entities: dict[str, EntityDef] = Field(default_factory=dict)
    intents: dict[str, Intent] = Field(min_length=2)
    flows: dict[str, Flow] = Field(default_factory=dict)
    tools: dict[str, Tool] = Field(default_factory=dict)
    includes: list[str] = Field(default_factory=list)
    # Set by the loader, not the YAML.
    sha256: str = ""
    root: str = ""

    def system_prompt(self, channel: str) -> str:
        style = self.prompts.get("voice" if channel in ("voice", "sip") else "chat", "")
        return f"{self.persona.strip()}\n\n{style.strip()}".strip()

    def entity_type(self, entity: str) -> tuple[str, EntityDef | None]:
        """(built-in type, the pack's definition or None) of a slot's entity."""
        if entity in self.entities:
            return self.entities[entity].type, self.entities[entity]
        return entity, None

    def flow_of(self, intent: str) -> str | None:
        i = self.intents.get(intent)
        return i.flow if i else None


# -- loading: YAML with line numbers, then pydantic, then cross-references ------------------------------------

class _Located:
    """Where each value came from: (file, line) by path of keys/indices."""

    def __init__(self) -> None:
        self.where: dict[tuple, tuple[str, int]] = {}

    def lookup(self, path: tuple) -> tuple[str, int] | None:
        while path not in self.where and path:
            path = path[:-1]
        return self.where.get(path)


def _construct(node: yaml.Node, file: str, path: tuple, located: _Located) -> Any:
    located.where[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            located.where[path + (key,)] = (file, key_node.start_mark.line + 1)
            if key in out:
                raise PackError(file, [f"{file}:{key_node.start_mark.line + 1}: {'.'.join(map(str, path + (key,)))}: "
                                       "defined twice"])
            out[key] = _construct(value_node, file, path + (key,), located)
            located.where[path + (key,)] = (file, key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(n, file, path + (i,), located) for i, n in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _read_yaml(path: Path, rel: str, located: _Located, base: tuple = ()) -> dict[str, Any]:
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = (e.problem_mark.line + 1) if e.problem_mark else 0
        raise PackError(rel, [f"{rel}:{line}: YAML syntax: {e.problem}"]) from e
    except UnicodeDecodeError as e:
        raise PackError(rel, [f"{rel}: not UTF-8 text (byte {e.start})"]) from e
    except yaml.YAMLError as e:   # a control character and the like (ReaderError: no line, a position)
        raise PackError(rel, [f"{rel}: unreadable YAML: {str(e).splitlines()[0][:160]}"]) from e
    except OSError as e:
        raise PackError(rel, [f"{rel}: cannot read: {e.strerror}"]) from e
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise PackError(rel, [f"{rel}:{node.start_mark.line + 1}: the file must be a mapping of keys"])
    try:
        return _construct(node, rel, base, located)
    except (TypeError, yaml.YAMLError) as e:   # a mapping or a list as a key: unhashable
        raise PackError(rel, [f"{rel}: a key must be a plain value ({str(e).splitlines()[0][:120]})"]) from e


def _substitute_env(value: Any) -> Any:
    """``${NAME}`` / ``${NAME:-default}`` in strings: endpoints differ per installation, the pack does not."""
    if isinstance(value, str):
        return _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(2) if m.group(2) is not None else ""), value)
    if isinstance(value, dict):
        return {k: _substitute_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v) for v in value]
    return value


def load_pack(folder: Path | str) -> Pack:
    """Load and validate ``folder/pack.yaml`` and its includes; raises ``PackError`` listing every problem."""
    folder = Path(folder)
    located = _Located()
    main = folder / "pack.yaml"
    data = _read_yaml(main, "pack.yaml", located)
    digest = hashlib.sha256(main.read_bytes())
    includes = data.get("includes") or []
    if not isinstance(includes, list):   # "includes: intents.yaml" was read a character at a time
        raise PackError(str(folder), [f"pack.yaml: includes: a list of files, e.g. [{includes!s:.60}]"])
    for inc in includes:
        if not isinstance(inc, str) or ".." in Path(inc).parts or Path(inc).is_absolute():
            raise PackError(str(folder), [f"pack.yaml: includes: '{inc}' must be a file inside the pack"])
        seen_at = dict(located.where)   # where each key was first defined (reading the include overwrites it)
        part = _read_yaml(folder / inc, inc, located)
        digest.update(inc.encode() + b"\0" + (folder / inc).read_bytes())
        for key, value in part.items():
            if key in data and key != "includes":
                if isinstance(data[key], dict) and isinstance(value, dict):
                    clash = set(data[key]) & set(value)
                    if clash:
                        first = sorted(clash)[0]
                        file, line = seen_at.get((key, first), ("pack.yaml", 0))
                        raise PackError(str(folder), [f"{inc}: {key}.{first}: already defined in {file}:{line}"])
                    data[key] = {**data[key], **value}
                    continue
                raise PackError(str(folder), [f"{inc}: {key}: already defined in pack.yaml"])
            data[key] = value
    data = _substitute_env(data)
    try:
        pack = Pack.model_validate({**data, "sha256": digest.hexdigest(), "root": str(folder.resolve())})
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("function-after",)))
            where = located.lookup(loc)
            field = ".".join(str(p) for p in loc) or "(pack)"
            prefix = f"{where[0]}:{where[1]}" if where else "pack.yaml"
            problems.append(f"{prefix}: {field}: {err['msg']}")
        raise PackError(str(folder), problems) from None
    problems = [f"{w[0]}:{w[1]}: {'.'.join(map(str, p))}: {msg}" if (w := located.lookup(p)) else f"{'.'.join(map(str, p))}: {msg}"
                for p, msg in cross_check(pack)]
    if problems:
        raise PackError(str(folder), problems)
    return pack


def cross_check(pack: Pack) -> list[tuple[tuple, str]]:
    """References between sections: what pydantic cannot see one field at a time."""
    out: list[tuple[tuple, str]] = []
    for name in list(pack.intents) + list(pack.flows) + list(pack.tools) + list(pack.entities):
        if not re.match(_NAME, name):
            out.append(((), f"'{name}' is not a valid name (lowercase letters, digits, underscores)"))
    for name, intent in pack.intents.items():
        if intent.flow and intent.flow not in pack.flows:
            out.append((("intents", name, "flow"), f"unknown flow '{intent.flow}'"))
        if intent.flow and intent.reply:
            out.append((("intents", name), "an intent has a flow or a reply, not both"))
        for slot in intent.sets:
            if not intent.flow or slot not in pack.flows.get(intent.flow, Flow(steps=[Step(say=".")])).slots:
                out.append((("intents", name, "sets", slot), f"'{slot}' is not a slot of the intent's flow"))
    esc, und = pack.escalation, pack.understanding
    for i, name in enumerate(esc.always_human):
        if name not in pack.intents:
            out.append((("escalation", "always_human", i), f"unknown intent '{name}'"))
    for field, name in (("request_intent", esc.request_intent),):
        if name and name not in pack.intents:
            out.append((("escalation", field), f"unknown intent '{name}'"))
    if und.cancel_intent and und.cancel_intent not in pack.intents:
        out.append((("understanding", "cancel_intent"), f"unknown intent '{und.cancel_intent}'"))
    for fname, flow in pack.flows.items():
        for sname, slot in flow.slots.items():
            if slot.entity not in ENTITY_TYPES and slot.entity not in pack.entities:
                out.append((("flows", fname, "slots", sname, "entity"), f"unknown entity '{slot.entity}'"))
            elif pack.entity_type(slot.entity)[0] == "enum" and not (
                    slot.entity in pack.entities and pack.entities[slot.entity].options):
                # nothing can fill it: every run of the flow would end with a hand-off
                out.append((("flows", fname, "slots", sname, "entity"),
                            f"'{slot.entity}' is an enum without options: define it under entities with its options"))
        asked: set[str] = set()
        for i, step in enumerate(flow.steps):
            where = ("flows", fname, "steps", i)
            if step.ask is not None:
                if step.ask not in flow.slots:
                    out.append((where + ("ask",), f"unknown slot '{step.ask}'"))
                asked.add(step.ask)
            if step.call is not None:
                tool = pack.tools.get(step.call)
                if tool is None:
                    out.append((where + ("call",), f"unknown tool '{step.call}'"))
                elif tool.side_effect != "read" and not any(s.confirm for s in flow.steps[:i]):
                    out.append((where + ("call",), f"tool '{step.call}' has side effects: confirm before calling it"))
                elif tool.side_effect != "read" and step.llm_args:
                    # The call runs on the turn that said "yes": arguments the model filled then were never read back.
                    out.append((where + ("llm_args",), f"tool '{step.call}' has side effects: its arguments must come "
                                                      "from slots the confirmation shows, not from the LLM"))
                elif tool.side_effect != "read" and any(
                        s.ask for s in flow.steps[max(j for j, s in enumerate(flow.steps[:i]) if s.confirm) + 1:i]):
                    # [confirm, ask amount, call transfer] would run on the turn that gave the amount: unconfirmed.
                    out.append((where + ("call",), f"tool '{step.call}' has side effects: a slot asked after the last "
                                                  "confirm would be used without being confirmed; ask it before"))
            if step.call is not None and (tool := pack.tools.get(step.call)) is not None:
                params = tool.parameters.get("properties")
                if isinstance(params, dict) and tool.parameters.get("additionalProperties") is False:
                    for arg in step.args:
                        if arg not in params:   # a typo: the schema refuses the call, every time, at run time
                            out.append((where + ("args", arg), f"'{arg}' is not a parameter of tool '{step.call}' "
                                                               f"(its parameters: {', '.join(params)})"))
            for text in (step.confirm, step.say, *step.errors.values(), *[v for v in step.args.values() if isinstance(v, str)]):
                for m in _TEMPLATE_FIELD.finditer(text or ""):
                    if m.group(1) not in flow.slots and m.group(1) != "result":
                        out.append((where, f"template field '{m.group(0)}' names no slot of this flow"))
                for braces in _BRACES.findall(text or ""):
                    if not _TEMPLATE_FIELD.fullmatch(braces):   # {Merchant}: rendered as it is, to the customer
                        out.append((where, f"'{braces}' is not a template field (lower-case slot names: {{amount}}, "
                                           "{result.reference})"))
    return out


def load_packs(folders: list[Path]) -> dict[str, Pack]:
    """Packs by tenant slug; two packs for one tenant is an error."""
    by_tenant: dict[str, Pack] = {}
    for folder in folders:
        pack = load_pack(folder)
        if pack.tenant in by_tenant:
            raise PackError(str(folder), [f"pack.yaml: tenant: '{pack.tenant}' already has pack '{by_tenant[pack.tenant].id}'"])
        by_tenant[pack.tenant] = pack
    return by_tenant
