"""Reads persona files (YAML front matter + Markdown prompt) and explains every problem in one plain line."""

from __future__ import annotations

import difflib
import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml  # type: ignore[import-untyped]  # types-PyYAML is not a dependency; only safe_load-style calls are used
from pydantic import ValidationError

from bot.core.personas import FIELD_RULES, FRONT_MATTER_KEYS, Persona, PersonaProblem, persona_key

_FENCE = "---"


def builtin_personas_dir() -> Traversable:
    """The personas shipped inside the package (package data), found wherever the bot is installed or started.

    Read through importlib.resources rather than a path beside the code, so a wheel install run from any directory
    finds them, and the working directory never changes which personas a deployment gets.
    """
    return files("bot") / "personas"


def load_personas(*folders: Traversable) -> tuple[list[Persona], list[PersonaProblem]]:
    """Later folders override earlier ones by name (PERSONAS_DIR over built-ins); a bad file is reported, not fatal.

    Reads every `*.md` in each folder in name order, skipping hidden files and README.md (notes for editors).
    Personas come back sorted by name; problems in the order they were found.
    """
    loaded: dict[str, Persona] = {}
    problems: list[PersonaProblem] = []
    for folder in folders:
        if not folder.is_dir():
            what = "is not a folder" if folder.is_file() else "does not exist"
            problems.append(PersonaProblem(str(folder), f"persona folder {what}"))
            continue
        in_this_folder: dict[str, Traversable] = {}
        for path in sorted(folder.iterdir(), key=lambda entry: entry.name):
            if not _is_persona_file(path):
                continue
            persona = _read_persona(path)
            if isinstance(persona, str):
                problems.append(PersonaProblem(str(path), persona))
                continue
            key = persona_key(persona.name)
            if key in in_this_folder:
                other = in_this_folder[key].name
                problems.append(
                    PersonaProblem(str(path), f"same persona name as {other} in this folder ('-' and '_' match)")
                )
                continue
            in_this_folder[key] = path
            loaded[key] = persona
    return sorted(loaded.values(), key=lambda persona: persona.name), problems


def _is_persona_file(path: Traversable) -> bool:
    """Markdown files only; hidden files and README.md (notes for editors) are not personas."""
    name = path.name
    return name.endswith(".md") and not name.startswith(".") and name.lower() != "readme.md" and path.is_file()


def _read_persona(path: Traversable) -> Persona | str:
    """One file to a Persona, or the reason it is not one: every problem found, joined into one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "the file is not UTF-8 text; save it as UTF-8"
    except OSError as error:
        return f"could not read the file ({error.strerror or error})"

    lines = text.removeprefix("\ufeff").splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip()), len(lines))
    if start == len(lines) or lines[start].rstrip() != _FENCE:
        return "missing front matter: the file must start with a '---' line, the settings, then another '---'"
    end = next((index for index in range(start + 1, len(lines)) if lines[index].rstrip() == _FENCE), None)
    if end is None:
        return "front matter is not closed: add a '---' line after the settings, before the prompt"

    try:
        front = yaml.load("\n".join(lines[start + 1 : end]), Loader=_FrontMatterLoader)
    except yaml.YAMLError as error:
        # +2: the YAML starts on the line after the opening '---', and people count lines from 1.
        return f"front matter: {_explain_yaml_error(error, first_line=start + 2)}"
    if front is None:
        front = {}
    if not isinstance(front, dict):
        return "front matter: write the settings as 'key: value' lines, one per line"

    settings = {str(key): value for key, value in front.items()}
    front_issues = _unknown_keys(settings)
    known = {key: value for key, value in settings.items() if key in FRONT_MATTER_KEYS}
    body = "\n".join(lines[end + 1 :]).strip()

    persona: Persona | None = None
    other_issues: list[str] = []
    try:
        persona = Persona.model_validate({**known, "prompt": body, "source": str(path)})
    except ValidationError as error:
        for field, message in _explain_validation_error(error, stem=_stem(path)):
            (other_issues if field == "prompt" else front_issues).append(message)

    name = known.get("name")
    if isinstance(name, str) and name.strip() != _stem(path) and not _has_issue_about(front_issues, "name"):
        front_issues.append(f"name '{name.strip()}' does not match the file name: rename the file to {name.strip()}.md")

    issues = ([f"front matter: {'; '.join(front_issues)}"] if front_issues else []) + other_issues
    if issues or persona is None:
        return "; ".join(issues) or "not a valid persona"
    return persona


def _stem(path: Traversable) -> str:
    return path.name.removesuffix(".md")


def _unknown_keys(settings: dict[str, object]) -> list[str]:
    """Unknown keys are usually typos (`modle:`); name the likely intended key."""
    issues = []
    for key in settings:
        if key in FRONT_MATTER_KEYS:
            continue
        close = difflib.get_close_matches(key.lower(), sorted(FRONT_MATTER_KEYS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(sorted(FRONT_MATTER_KEYS))})"
        issues.append(f"unknown key '{key}'{hint}")
    return issues


def _explain_validation_error(error: ValidationError, *, stem: str) -> list[tuple[str, str]]:
    """Pydantic's error list, one plain sentence per field (a union reports a field several times)."""
    explained: dict[str, str] = {}
    for detail in error.errors():
        field = str(detail["loc"][0]) if detail["loc"] else ""
        if field in explained:
            continue
        if detail["type"] == "missing":
            hint = f" (use the file name: {stem})" if field == "name" else ""
            explained[field] = f"missing required key '{field}'{hint}"
        elif field in FIELD_RULES:
            got = "" if field == "prompt" else f" (got {_shown(detail['input'])})"
            explained[field] = f"{FIELD_RULES[field]}{got}"
        else:
            # A rule across fields (the thinking budget versus max_tokens) carries its own sentence.
            cause = detail.get("ctx", {}).get("error")
            explained[field] = str(cause) if cause is not None else detail["msg"]
    return list(explained.items())


def _has_issue_about(issues: list[str], field: str) -> bool:
    return any(issue.startswith((f"{field} ", f"missing required key '{field}'")) for issue in issues)


def _shown(value: object) -> str:
    """A value as the author typed it, short enough to keep the problem on one line."""
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 40 else f"{len(value)} characters"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _explain_yaml_error(error: Any, *, first_line: int) -> str:
    """YAML's multi-line report to one line, with the line number in the file and the usual cause."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or " ".join(str(error).split())
    where = f" on line {first_line + mark.line}" if mark is not None else ""
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = " (a value containing ': ' or starting with ':' must be in quotes, like emoji: \":mag:\")"
    elif "found character '\\t'" in problem:
        hint = " (use spaces, not tabs)"
    return f"YAML syntax error{where}: {problem}{hint}"


def _frontmatter_loader() -> Any:
    """PyYAML follows YAML 1.1, where `thinking: off` is False; keep on/off/yes/no as words, and catch repeats."""
    bool_tag = "tag:yaml.org,2002:bool"
    loader: Any = type("FrontMatterLoader", (yaml.SafeLoader,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

    def construct_mapping(self: Any, node: Any, deep: bool = False) -> Any:
        """A key written twice silently keeps the last value in YAML; a person meant one of them."""
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = getattr(key_node, "value", None)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' appears twice", key_node.start_mark
                )
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(self, node, deep=deep)

    loader.construct_mapping = construct_mapping
    return loader


_FrontMatterLoader = _frontmatter_loader()
