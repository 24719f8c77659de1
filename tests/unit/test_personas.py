"""Persona files: every shipped one loads, a broken one is reported in plain words, lookups are forgiving."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.personas import DEFAULT_SUGGESTED_PROMPTS, Persona, PersonaCatalog
from bot.storage.persona_files import builtin_personas_dir, load_personas

SHIPPED = builtin_personas_dir()
GOOD_FILE = """---
name: {name}
description: {description}
---
You are a {name}. Answer briefly.
"""


def write(folder: Path, file_name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(text, encoding="utf-8")
    return path


def good(folder: Path, name: str, description: str = "A test persona.") -> Path:
    return write(folder, f"{name}.md", GOOD_FILE.format(name=name, description=description))


def persona(name: str, **fields: object) -> Persona:
    return Persona.model_validate({"name": name, "description": f"{name} persona", "prompt": "Be useful.", **fields})


# --- The shipped personas -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> dict[str, Persona]:
    personas, problems = load_personas(SHIPPED)
    assert problems == []
    return {p.name: p for p in personas}


def test_the_four_shipped_personas_load_without_problems(shipped: dict[str, Persona]) -> None:
    assert sorted(shipped) == ["code_reviewer", "default", "sql_expert", "technical_writer"]
    assert {path.stem for path in SHIPPED.glob("*.md")} == set(shipped)


@pytest.mark.parametrize("name", ["default", "code_reviewer", "technical_writer", "sql_expert"])
def test_each_shipped_persona_has_a_description_and_a_prompt_of_substance(
    shipped: dict[str, Persona], name: str
) -> None:
    persona = shipped[name]
    assert 10 < len(persona.description) <= 150
    assert len(persona.prompt) > 400
    assert persona.source.endswith(f"{name}.md")
    assert not persona.prompt.startswith("---")


def test_the_reviewer_names_every_section_of_its_answer(shipped: dict[str, Persona]) -> None:
    reviewer = shipped["code_reviewer"]
    for section in ("Summary", "Issues", "Suggestions", "Rating: N/10"):
        assert section in reviewer.prompt
    for severity in ("Critical", "Major", "Minor"):
        assert severity in reviewer.prompt
    assert (reviewer.thinking, reviewer.effort) == ("adaptive", "high")


def test_the_sql_expert_states_its_dialect_and_suggests_indexes(shipped: dict[str, Persona]) -> None:
    sql = shipped["sql_expert"]
    assert "dialect" in sql.prompt.lower()
    assert "PostgreSQL" in sql.prompt
    assert "CREATE INDEX" in sql.prompt
    assert sql.effort == "high"


# --- Broken files ---------------------------------------------------------------------------------------

BROKEN = {
    "no_front_matter.md": ("You are a persona with no settings.\n", "missing front matter"),
    "bad_yaml.md": (
        "---\nname: bad_yaml\ndescription: Reviews code: carefully\n---\nPrompt.\n",
        "YAML syntax error on line 3",
    ),
    "unknown_key.md": (
        "---\nname: unknown_key\ndescription: Typo.\nmodle: claude-x\n---\nPrompt.\n",
        "unknown key 'modle' (did you mean 'model'?)",
    ),
    "small_budget.md": (
        "---\nname: small_budget\ndescription: Too little thinking.\nthinking: 500\n---\nPrompt.\n",
        "front matter: thinking must be 'off', 'adaptive' or a number >= 1024 (got 500)",
    ),
    "mismatch.md": (
        "---\nname: other_name\ndescription: Wrong file.\n---\nPrompt.\n",
        "name 'other_name' does not match the file name",
    ),
    "empty_body.md": ("---\nname: empty_body\ndescription: Says nothing.\n---\n\n  \n", "the prompt is empty"),
}


def test_each_broken_file_is_one_plain_problem_and_good_files_beside_it_still_load(tmp_path: Path) -> None:
    for file_name, (text, _) in BROKEN.items():
        write(tmp_path, file_name, text)
    good(tmp_path, "fine")
    write(tmp_path, "notes.txt", "not a persona")

    personas, problems = load_personas(tmp_path)

    assert [p.name for p in personas] == ["fine"]
    by_file = {Path(problem.file).name: problem.problem for problem in problems}
    assert len(problems) == len(BROKEN) == len(by_file)
    for file_name, (_, expected) in BROKEN.items():
        assert expected in by_file[file_name], by_file[file_name]
        assert "\n" not in by_file[file_name]


@pytest.mark.parametrize(
    ("front_matter", "expected"),
    [
        ("description: No name.", "missing required key 'name' (use the file name: p)"),
        ("name: p", "missing required key 'description'"),
        (
            "name: p\ndescription: " + "x" * 151,
            "description must be one line of 1 to 150 characters (got 151 characters)",
        ),
        ("name: p\ndescription: d\neffort: extreme", "effort must be one of: low, medium, high, xhigh, max"),
        ("name: p\ndescription: d\nmax_tokens: lots", "max_tokens must be a whole number from 1 to 128000"),
        ("name: p\ndescription: d\nmax_tokens: 4000\nthinking: 4000", "must be less than max_tokens (4000)"),
        ("name: p\ndescription: d\nthinking: on", "thinking must be 'off', 'adaptive' or a number >= 1024 (got 'on')"),
        ("name: p\ndescription: d\nemoji: two words", 'emoji must be a Slack emoji code in quotes, like ":mag:"'),
        ("name: p\ndescription: d\nmodel: a\nmodel: b", "the key 'model' appears twice"),
        ("- name: p", "write the settings as 'key: value' lines"),
    ],
)
def test_bad_values_are_explained_in_plain_words(tmp_path: Path, front_matter: str, expected: str) -> None:
    write(tmp_path, "p.md", f"---\n{front_matter}\n---\nPrompt.\n")
    personas, problems = load_personas(tmp_path)
    assert personas == []
    assert len(problems) == 1
    assert expected in problems[0].problem
    assert problems[0].problem.count("\n") == 0


def test_a_front_matter_that_never_closes_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "open.md", "---\nname: open\ndescription: d\nYou are...\n")
    _, problems = load_personas(tmp_path)
    assert [p.problem for p in problems] == [
        "front matter is not closed: add a '---' line after the settings, before the prompt"
    ]


def test_friendly_spellings_are_accepted(tmp_path: Path) -> None:
    write(
        tmp_path,
        "friendly.md",
        "---\nname: friendly\ndescription: >\n  Folded over\n  two lines.\nemoji: mag\neffort: High\n"
        "thinking: off\ntools: read_thread, fetch_url\n---\n\nPrompt with a --- rule inside.\n\n---\n\nMore.\n",
    )
    (loaded,), problems = load_personas(tmp_path)
    assert problems == []
    assert loaded.description == "Folded over two lines."
    assert (loaded.emoji, loaded.effort, loaded.thinking) == (":mag:", "high", "off")
    assert loaded.tools == ("read_thread", "fetch_url")
    assert loaded.prompt.endswith("More.")


def test_two_files_with_the_same_name_in_one_folder_keep_the_first(tmp_path: Path) -> None:
    good(tmp_path, "code-reviewer")
    good(tmp_path, "code_reviewer")
    personas, problems = load_personas(tmp_path)
    assert [p.name for p in personas] == ["code-reviewer"]
    assert len(problems) == 1
    assert Path(problems[0].file).name == "code_reviewer.md"
    assert "same persona name as code-reviewer.md" in problems[0].problem


def test_a_missing_folder_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    personas, problems = load_personas(tmp_path / "nowhere")
    assert personas == []
    assert [(p.file, p.problem) for p in problems] == [(str(tmp_path / "nowhere"), "persona folder does not exist")]


# --- Deployment overrides (PERSONAS_DIR) -----------------------------------------------------------------


def test_a_later_folder_replaces_a_builtin_by_name_and_adds_new_ones(tmp_path: Path) -> None:
    good(tmp_path, "code_reviewer", description="Our house review style.")
    good(tmp_path, "support_agent")

    personas, problems = load_personas(SHIPPED, tmp_path)

    assert problems == []
    by_name = {p.name: p for p in personas}
    assert sorted(by_name) == ["code_reviewer", "default", "sql_expert", "support_agent", "technical_writer"]
    assert by_name["code_reviewer"].description == "Our house review style."
    assert by_name["code_reviewer"].source == str(tmp_path / "code_reviewer.md")
    assert by_name["default"].source.startswith(str(SHIPPED))


def test_the_builtin_folder_is_found_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "personas").mkdir()  # a stray ./personas folder must not replace the shipped set
    monkeypatch.chdir(tmp_path)
    personas, problems = load_personas(builtin_personas_dir())
    assert problems == []
    assert [p.name for p in personas] == ["code_reviewer", "default", "sql_expert", "technical_writer"]


# --- The model and the catalog --------------------------------------------------------------------------


def test_tools_none_allows_everything_and_an_empty_list_allows_nothing() -> None:
    assert persona("a").allows_tool("fetch_url")
    assert not persona("b", tools=[]).allows_tool("fetch_url")
    limited = persona("c", tools=["read_thread", "read_thread"])
    assert limited.tools == ("read_thread",)
    assert limited.allows_tool("read_thread")
    assert not limited.allows_tool("fetch_url")


def test_lookup_ignores_case_and_dash_versus_underscore() -> None:
    catalog = PersonaCatalog([persona("default"), persona("code_reviewer"), persona("sql-expert")])
    assert catalog.get("Code-Reviewer") is catalog.get("code_reviewer")
    assert catalog.get(" CODE_REVIEWER ") is not None
    assert catalog.get("sql_expert") is catalog.get("SQL-Expert")
    assert catalog.get("nobody") is None
    assert "code-reviewer" in catalog
    assert catalog.names() == ["code_reviewer", "default", "sql-expert"]
    assert [p.name for p in catalog] == catalog.names()
    assert len(catalog) == 3


def test_resolve_falls_back_to_the_default_and_never_raises() -> None:
    catalog = PersonaCatalog([persona("default"), persona("code_reviewer")], default_name="code-reviewer")
    assert catalog.default_name == "code_reviewer"
    assert catalog.fallback_from is None
    assert catalog.resolve(None).name == "code_reviewer"
    assert catalog.resolve("").name == "code_reviewer"
    assert catalog.resolve("retired_persona").name == "code_reviewer"
    assert catalog.resolve("DEFAULT").name == "default"


def test_an_unknown_default_falls_back_to_default_then_to_the_first_alphabetically() -> None:
    with_default = PersonaCatalog([persona("zeta"), persona("default")], default_name="missing")
    assert (with_default.default_name, with_default.fallback_from) == ("default", "missing")
    without_default = PersonaCatalog([persona("zeta"), persona("alpha")], default_name="missing")
    assert without_default.default_name == "alpha"
    assert without_default.default.name == "alpha"


def test_a_later_persona_with_the_same_name_wins_in_the_catalog() -> None:
    catalog = PersonaCatalog([persona("default", description="old"), persona("default", description="new")])
    assert catalog.default.description == "new"


def test_an_empty_catalog_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="no personas"):
        PersonaCatalog([])


# --- Suggested prompts for the assistant pane ---------------------------------------------------------------


def test_each_shipped_persona_suggests_four_prompts_that_stand_alone(shipped: dict[str, Persona]) -> None:
    for persona in shipped.values():
        assert len(persona.prompts) == 4, persona.name
        for prompt in persona.prompts:
            assert prompt.title and len(prompt.message) > len(prompt.title)


def test_a_prompt_may_be_one_line_or_a_title_and_a_message(tmp_path: Path) -> None:
    write(
        tmp_path,
        "helper.md",
        "---\nname: helper\ndescription: Helps.\nsuggested_prompts:\n  - Plan my week\n"
        "  - title: Tidy notes\n    message: Tidy up the notes I paste next.\n---\nHelp.\n",
    )
    [helper], problems = load_personas(tmp_path)
    assert problems == []
    assert [(p.title, p.message) for p in helper.prompts] == [
        ("Plan my week", "Plan my week"),
        ("Tidy notes", "Tidy up the notes I paste next."),
    ]


def test_without_prompts_a_persona_suggests_the_defaults() -> None:
    assert persona("quiet").prompts == DEFAULT_SUGGESTED_PROMPTS


def test_too_many_prompts_are_explained_in_plain_words(tmp_path: Path) -> None:
    prompts = "".join(f"  - Prompt {n}\n" for n in range(5))
    write(tmp_path, "chatty.md", f"---\nname: chatty\ndescription: Talks.\nsuggested_prompts:\n{prompts}---\nHi.\n")
    personas, [problem] = load_personas(tmp_path)
    assert personas == []
    assert "suggested_prompts must be a list of at most 4 prompts" in problem.problem
