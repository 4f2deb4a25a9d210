"""Domain packs: the example pack loads, and a broken pack is refused with the file, line and field of each
problem (what an operator needs to fix it without reading code)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.dialogue.packs import PackError, load_pack, load_packs
from gateway.dialogue.render import render, render_value

EXAMPLE = Path(__file__).resolve().parents[2] / "packs" / "retail-bank"


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    shutil.copytree(EXAMPLE, folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def problems(folder: Path) -> list[str]:
    with pytest.raises(PackError) as e:
        load_pack(folder)
    return e.value.problems


def test_the_example_pack_is_complete() -> None:
    pack = load_pack(EXAMPLE)
    assert pack.tenant == "demo-bank" and len(pack.intents) >= 15
    assert {"balance", "block_card", "dispute", "transfer", "branch_hours"} <= set(pack.flows)
    assert pack.escalation.request_intent == "speak_to_human" and "report_fraud" in pack.escalation.always_human
    assert pack.tools["transfer"].side_effect == "money" and pack.tools["transfer"].approval.amount_over is not None
    assert "numbers" in pack.system_prompt("voice") and "markdown" in pack.system_prompt("chat")
    assert pack.sha256 and load_pack(EXAMPLE).sha256 == pack.sha256   # stable: the classifier cache keys on it


def test_unknown_references_name_file_line_and_field(pack_copy: Path) -> None:
    edit(pack_copy / "intents.yaml", "flow: dispute\n", "flow: disputes\n")
    edit(pack_copy / "flows.yaml", '{amount} charged on {date}', '{amout} charged on {date}')
    got = problems(pack_copy)
    line = next(i for i, t in enumerate((pack_copy / "intents.yaml").read_text().splitlines(), 1) if "flow: disputes" in t)
    assert f"intents.yaml:{line}: intents.dispute_transaction.flow: unknown flow 'disputes'" in got
    assert any(p.startswith("flows.yaml:") and "'{amout}'" in p for p in got)


def test_type_errors_and_yaml_syntax_are_located(pack_copy: Path) -> None:
    edit(pack_copy / "pack.yaml", "threshold: 0.5", "threshold: high")
    got = problems(pack_copy)
    assert len(got) == 1 and got[0].startswith("pack.yaml:") and "understanding.threshold" in got[0]
    edit(pack_copy / "pack.yaml", "threshold: high", "threshold: [0.5")
    got = problems(pack_copy)
    assert got[0].startswith("pack.yaml:") and "YAML syntax" in got[0]


def test_side_effects_need_a_confirmation_and_tools_a_valid_schema(pack_copy: Path) -> None:
    flows = pack_copy / "flows.yaml"
    edit(flows, '      - confirm: "To confirm: move {amount} from your {from_account} to your {to_account}?"\n', "")
    assert any(p.startswith("flows.yaml:") and "flows.transfer.steps.3.call" in p and "confirm before calling it" in p
               for p in problems(pack_copy))
    edit(pack_copy / "tools.yaml", "limit: {type: integer, minimum: 1, maximum: 20}", "limit: {type: integr}")
    assert any(p.startswith("tools.yaml:") and "not a valid JSON schema" in p for p in problems(pack_copy))


def test_a_side_effect_runs_only_on_what_was_confirmed(pack_copy: Path) -> None:
    """[confirm, ask amount, call transfer] would run on the turn that gave the amount, which nobody confirmed."""
    flows = pack_copy / "flows.yaml"
    edit(flows, "      - ask: amount\n      - confirm:", "      - confirm:")
    edit(flows, "      - call: transfer\n", "      - ask: amount\n      - call: transfer\n")
    assert any("flows.transfer.steps.4.call" in p and "without being confirmed" in p for p in problems(pack_copy))


def test_a_step_is_one_thing_and_a_key_is_defined_once(pack_copy: Path, tmp_path: Path) -> None:
    edit(pack_copy / "flows.yaml", "      - ask: account\n", "      - ask: account\n        confirm: sure?\n")
    assert any("flows.balance.steps.0" in p and "exactly one of" in p for p in problems(pack_copy))
    other = tmp_path / "dupe"
    shutil.copytree(EXAMPLE, other)
    edit(other / "pack.yaml", "language: en\n", "language: en\nlanguage: de\n")
    assert any("defined twice" in p for p in problems(other))


def test_two_packs_for_one_tenant_are_refused(pack_copy: Path) -> None:
    with pytest.raises(PackError, match="already has pack"):
        load_packs([EXAMPLE, pack_copy])


def test_environment_variables_fill_endpoints(pack_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_BANK_URL", "http://10.1.2.3:9000")
    assert load_pack(pack_copy).tools["transfer"].http.url == "http://10.1.2.3:9000/tools/transfer"
    monkeypatch.delenv("ENCLAVE_BANK_URL")
    assert load_pack(pack_copy).tools["transfer"].http.url == "http://127.0.0.1:8090/tools/transfer"


def test_templates_fill_slots_and_results_and_nothing_else() -> None:
    slots = {"amount": {"value": "250.00", "currency": "EUR"}, "account": "credit_card", "n": 3}
    assert render("Move {amount} from {account}", slots) == "Move 250.00 EUR from credit card"
    assert render("ref {result.reference} {result.items.0.id}", slots, {"reference": "TRF-1", "items": [{"id": "x"}]}) \
        == "ref TRF-1 x"
    assert render("{__class__} {amount.__dict__} {missing}", slots) == "{__class__} {amount.__dict__} "
    assert render_value({"amount": "{amount.value}", "n": "{n}", "acct": "{account}", "fixed": 5}, slots) == \
        {"amount": "250.00", "n": 3, "acct": "credit_card", "fixed": 5}


def test_side_effect_arguments_never_come_from_the_llm(pack_copy: Path) -> None:
    edit(pack_copy / "flows.yaml", "      - call: block_card\n", "      - call: block_card\n        llm_args: true\n")
    assert any("flows.block_card.steps" in p and "llm_args" in p and "must come from slots" in p
               for p in problems(pack_copy))


def test_a_flow_run_goes_on_only_under_the_flow_it_started_with() -> None:
    from gateway.dialogue.decide import DialogueState, flow_digest
    pack = load_pack(EXAMPLE)
    flow = pack.flows["block_card"]
    run = DialogueState(flow="block_card", step=2, awaiting="confirm", flow_digest=flow_digest(flow))
    assert run.runs_on(pack)
    edited = pack.model_copy(update={"flows": {**pack.flows, "block_card": flow.model_copy(
        update={"steps": flow.steps[:2] + flow.steps[3:]})}})
    assert not run.runs_on(edited)                                    # any edit of the flow ends the run
    assert not run.runs_on(pack.model_copy(update={"flows": {}}))      # so does its removal
    # A run stored before digests were kept goes on where its position still exists.
    assert DialogueState(flow="block_card", step=2, awaiting="slot:card").runs_on(pack)
    assert not DialogueState(flow="block_card", step=9).runs_on(pack)
    assert not DialogueState(flow="block_card", step=0, awaiting="slot:pin").runs_on(pack)


def test_a_tool_schema_may_not_refer_outside_itself_and_validation_never_fetches(pack_copy: Path) -> None:
    """jsonschema fetched an unknown $ref with urllib on the first validation: a pack could make the appliance
    connect out. A reference outside the schema is refused at load; validators resolve nothing else."""
    from jsonschema.exceptions import _WrappedReferencingError

    from gateway.dialogue.schemas import outside_refs, validator

    edit(pack_copy / "tools.yaml", "limit: {type: integer, minimum: 1, maximum: 20}",
         'limit: {$ref: "http://127.0.0.1:9/limit.json"}')
    assert any(p.startswith("tools.yaml:") and "refers outside itself" in p and "127.0.0.1:9" in p
               for p in problems(pack_copy))
    local = {"$defs": {"n": {"type": "integer"}}, "properties": {"x": {"$ref": "#/$defs/n"}}}
    assert outside_refs(local) == [] and [e.message for e in validator(local).iter_errors({"x": "a"})]
    with pytest.raises(_WrappedReferencingError):    # what a schema built in code would get: an error, not a fetch
        list(validator({"properties": {"x": {"$ref": "http://127.0.0.1:9/x.json"}}}).iter_errors({"x": 1}))


def test_a_tool_url_must_be_absolute_once_its_variables_are_filled(pack_copy: Path) -> None:
    """${UNSET}/tools/transfer became /tools/transfer, loaded, and failed on every call."""
    text = (pack_copy / "tools.yaml").read_text().replace("${ENCLAVE_BANK_URL:-http://127.0.0.1:8090}", "${NO_SUCH_VAR}")
    (pack_copy / "tools.yaml").write_text(text)
    assert any(p.startswith("tools.yaml:") and "absolute http(s) URL" in p and "unset" in p for p in problems(pack_copy))


@pytest.mark.parametrize("junk,says", [(b"\xe9t\xe9\n", "not UTF-8"), (b"x: \x07\n", "unreadable YAML"),
                                       (b"? [a, b]\n: 1\n", "a key must be a plain value")])
def test_unreadable_yaml_is_a_pack_error_naming_the_file(pack_copy: Path, junk: bytes, says: str) -> None:
    """A non-UTF-8 byte, a control character or a list as a key raised a bare exception: a traceback at start,
    and at run time every reload check failed the turn, while the last good pack was meant to keep serving."""
    with (pack_copy / "entities.yaml").open("ab") as f:
        f.write(junk)
    assert any(p.startswith("entities.yaml") and says in p for p in problems(pack_copy)), problems(pack_copy)


def test_call_arguments_approval_rules_and_template_fields_are_checked_at_load(pack_copy: Path) -> None:
    """Each of these loaded and failed only at run time: a misspelt argument (the schema refused every call),
    an approval limit without its amount argument (no call ever went to approval), {Amount} (sent as it is)."""
    flows, tools = pack_copy / "flows.yaml", pack_copy / "tools.yaml"
    edit(flows, 'args: {from_account: "{from_account}"', 'args: {from_acount: "{from_account}"')
    edit(flows, 'say: "Done: {amount} moved', 'say: "Done: {Amount} moved')
    found = problems(pack_copy)
    assert any("'from_acount' is not a parameter of tool 'transfer'" in p for p in found), found
    assert any("'{Amount}' is not a template field" in p for p in found), found
    edit(tools, 'approval: {amount_arg: amount, amount_over: "5000"}', 'approval: {amount_over: "5000"}')
    assert any(p.startswith("tools.yaml:") and "amount_arg and amount_over together" in p for p in problems(pack_copy))
    edit(tools, 'approval: {amount_over: "5000"}', 'approval: {amount_arg: sum, amount_over: "5000"}')
    assert any("amount_arg 'sum' is not one of the tool's parameters" in p for p in problems(pack_copy))


def test_includes_must_be_a_list(pack_copy: Path) -> None:
    """'includes: intents.yaml' was read a character at a time ("i: cannot read")."""
    edit(pack_copy / "pack.yaml", "includes: [intents.yaml, entities.yaml, flows.yaml, tools.yaml]",
         "includes: intents.yaml")
    assert any("includes: a list of files" in p for p in problems(pack_copy)), problems(pack_copy)


def test_a_key_defined_in_two_files_names_where_it_was_first(pack_copy: Path) -> None:
    """The message named the include itself as the first place (its positions had overwritten the record)."""
    first = (pack_copy / "intents.yaml").read_text().split("intents:\n", 1)[1].splitlines()[0].strip().rstrip(":")
    with (pack_copy / "tools.yaml").open("a") as f:
        f.write(f"intents:\n  {first}:\n    examples: [a, b, c]\n")
    found = problems(pack_copy)
    assert any(p.startswith(f"tools.yaml: intents.{first}: already defined in intents.yaml:") for p in found), found


def test_an_enum_slot_without_options_is_refused_at_load(pack_copy: Path) -> None:
    """Nothing could fill it: every run of its flow ended with a hand-off."""
    edit(pack_copy / "entities.yaml", "options: [main street, harbour, airport]", "options: []")
    got = problems(pack_copy)
    assert any("is an enum without options" in p and p.startswith("flows.yaml:") for p in got), got
