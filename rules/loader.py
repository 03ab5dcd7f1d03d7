"""Load rule files: YAML -> typed models (pydantic) -> compiled :class:`RuleSet` and book.

The admin's experience is the point: every problem in a file is reported at once, each with
file, line and column, the rule it is in, a plain-English message and a did-you-mean suggestion
for unknown names. The steps, each in its own module:

1. :mod:`rules.yamldoc` parses the text into plain data and the position of every part;
2. :mod:`rules.schema` validates the data once into typed models; :mod:`rules.shape_errors`
   words the validation errors;
3. :mod:`rules.compiler` checks what depends on the set and the config, and compiles the models
   (for a file with shape errors, :mod:`rules.salvage` still runs those checks on its intact
   parts);
4. :mod:`rules.diagnostics` places every issue at ``file:line:column`` and in its rule.

Nothing but :class:`~rules.issues.RuleLoadError` leaves :func:`load_ruleset` /
:func:`load_rulebook`; an unexpected exception is itself reported as an issue.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml.error import YAMLError

from rules.analysis import book_loops
from rules.calendar import Calendar
from rules.compiler import RuleSetCompiler
from rules.diagnostics import Diagnostics
from rules.engine import RuleBook, RuleSet
from rules.fields import STANDARD_FIELDS, FieldType
from rules.issues import RuleIssue, RuleLoadError, describe_kind
from rules.parts import LoadOptions
from rules.salvage import check_intact_parts
from rules.schema import RuleSetModel
from rules.shape_errors import report_shape_errors
from rules.yamldoc import YamlContentError, read_yaml

__all__ = ["load_rulebook", "load_ruleset"]


def load_ruleset(
    path: Path,
    *,
    fields: Mapping[str, FieldType] = STANDARD_FIELDS,
    settable_fields: Collection[str] = (),
    newsletters: Collection[str] | None = None,
    calendar: Calendar | None = None,
) -> RuleSet:
    """Load and compile one rule file.

    Args:
        path: The YAML rule file.
        fields: Field catalogue (canonical name -> type); conditions may use only these.
        settable_fields: Fields ``set_field`` may write.
        newsletters: Known newsletter names; None accepts any name.
        calendar: Working time for business durations and date-only values (None: UTC,
            Mon-Fri 9-17, no holidays).

    Returns:
        The compiled rule set (its ``warnings`` hold non-fatal issues).

    Raises:
        RuleLoadError: with every problem found in the file.
    """
    options = LoadOptions(
        fields,
        frozenset(settable_fields),
        None if newsletters is None else frozenset(newsletters),
        calendar,
    )
    path = Path(path)
    diag = Diagnostics(str(path))
    try:
        with _cyclic_gc_paused():
            result = _load(path, options, diag)
    except Exception as exc:  # noqa: BLE001 - never a traceback for the admin
        diag.error_at(
            (1, 1),
            f"internal error while checking this file "
            f"({type(exc).__name__}: {exc}); please report it with the file",
        )
        result = None
    if result is None or diag.has_errors:
        raise RuleLoadError(diag.in_file_order())
    return result


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    # A large file is hundreds of thousands of short-lived containers (data, positions,
    # models). Without a pause the cyclic collector walks them over and over: 40% of the time
    # for 10,000 rules. They hold no reference cycles, so reference counting frees them all
    # the same; the collector resumes (if it was on) when the load ends.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load(path: Path, options: LoadOptions, diag: Diagnostics) -> RuleSet | None:
    raw = _read(path, diag)
    if raw is None:
        return None
    data = _parse(raw, diag)
    if data is None:
        return None
    compiler = RuleSetCompiler(path, options, diag)
    try:
        model = RuleSetModel.model_validate(data)
    except ValidationError as exc:
        report_shape_errors(diag, data, exc)
        check_intact_parts(compiler, data)
        return None
    return compiler.compile(model, hashlib.sha256(raw).hexdigest())


#: Largest rule file read (10,000 rules are about 3 MB).
MAX_FILE_BYTES = 32 * 1024 * 1024


def _read(path: Path, diag: Diagnostics) -> bytes | None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            diag.error_at(
                (1, 1),
                f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB; "
                "split it into several rule files",
            )
            return None
        return raw
    except OSError as exc:
        diag.error_at((1, 1), f"cannot read the rule file: {exc.strerror or exc}")
        return None


def _parse(raw: bytes, diag: Diagnostics) -> dict[object, object] | None:
    """The file's top-level mapping, or None (with the problem reported)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        diag.error_at((line, 1), "the file is not UTF-8 text; save it as UTF-8")
        return None
    try:
        doc = read_yaml(text)
    except YAMLError as exc:
        diag.yaml_error(exc, text)
        return None
    except YamlContentError as exc:
        diag.content_error(exc, text)
        return None
    diag.attach(doc)
    if doc.data is None:
        diag.error_at(
            (1, 1), "the file is empty; a rule set needs at least `version: 1`, `name` and `rules`"
        )
        return None
    if not isinstance(doc.data, dict):
        diag.error(
            (),
            f"the top level of a rule file must be a mapping (version, name, "
            f"rules, ...), not {describe_kind(doc.data)}",
            at="node",
        )
        return None
    return doc.data


def load_rulebook(
    paths: Sequence[Path],
    *,
    fields: Mapping[str, FieldType] = STANDARD_FIELDS,
    settable_fields: Collection[str] = (),
    newsletters: Collection[str] | None = None,
    calendar: Calendar | None = None,
) -> RuleBook:
    """Load several rule files into a book evaluated in the given order.

    Errors from all files are collected into one :class:`RuleLoadError`; rule ids must be unique
    across the book (they are stored in audit rows) and so must set names.

    Raises:
        RuleLoadError: with every problem found in every file.
    """
    if not paths:
        raise RuleLoadError([RuleIssue("<rule book>", 1, 1, None, "no rule files given")])
    issues: list[RuleIssue] = []
    sets: list[RuleSet] = []
    seen: dict[Path, int] = {}
    for number, path in enumerate(paths, 1):
        first = seen.setdefault(Path(path).resolve(), number)
        if first != number:
            # Loaded twice, every rule id and the set name would "clash" with themselves.
            issues.append(
                RuleIssue(
                    str(path),
                    1,
                    1,
                    None,
                    f"this file is given twice (rule files {first} and {number} of "
                    f"{len(paths)}); list each rule file once",
                )
            )
            continue
        try:
            sets.append(
                load_ruleset(
                    path,
                    fields=fields,
                    settable_fields=settable_fields,
                    newsletters=newsletters,
                    calendar=calendar,
                )
            )
        except RuleLoadError as exc:
            issues.extend(exc.issues)
    issues.extend(_clashes_between_files(sets))
    if any(i.severity == "error" for i in issues):
        raise RuleLoadError(issues)
    across = book_loops(sets)
    if any(i.severity == "error" for i in across):
        raise RuleLoadError(across)
    book = RuleBook(sets)
    book.book_warnings = tuple(across)
    return book


def _clashes_between_files(sets: Sequence[RuleSet]) -> list[RuleIssue]:
    """Set names and rule ids used by more than one file."""
    issues: list[RuleIssue] = []
    seen_ids: dict[str, tuple[RuleSet, int]] = {}
    seen_names: dict[str, RuleSet] = {}
    for rs in sets:
        if rs.name in seen_names:
            issues.append(
                RuleIssue(
                    str(rs.path),
                    1,
                    1,
                    None,
                    f"rule set name '{rs.name}' is already used by "
                    f"{seen_names[rs.name].path}; give each file its own `name`",
                )
            )
        seen_names.setdefault(rs.name, rs)
        for rule in rs.rules:
            if rule.id in seen_ids:
                other, line = seen_ids[rule.id]
                issues.append(
                    RuleIssue(
                        str(rs.path),
                        rule.line,
                        1,
                        rule.id,
                        f"duplicate rule id '{rule.id}' (also in {other.path}:{line}); rule ids must "
                        "be unique across all rule files because audit rows refer to them",
                    )
                )
            else:
                seen_ids[rule.id] = (rs, rule.line)
    return issues
