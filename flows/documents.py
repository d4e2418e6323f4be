"""Printed documents from templates: ``assets/print/<kind>.toml`` + data -> PrintDocument.

A template says what is on the paper; the flow supplies the data; the printer driver draws it.
No flow lays out a document by hand.

Template format (TOML, one file per document kind, the file's stem is the kind)::

    title = "受理回执"              # format string; also the PDF title
    media = "roll80mm"              # or "A4": the default paper (render(media=...) overrides)
    header = "{centre_name}"        # optional: repeated at the top of every A4 page
    [meta]                          # optional: job-log fields (format strings, no personal data)
    tracking_number = "{tracking_number}"
    [choices.requirement]           # optional: value -> wording, used as "{requirement:@requirement}"
    required = "必交"

    [[blocks]]                      # the content, in order
    type = "field"                  # heading paragraph field list table rule spacer qr signature group
    label = "办件编号"
    value = "{tracking_number}"
    when = "tracking_number"        # optional: only when this field is present and not empty
    # unless = "field"              # optional: only when it is absent or empty
    # each = "materials"            # optional: the block once per item of a list field

Format strings are Python's ``str.format`` over the data: ``{name}``, ``{applicant.name}``
(nested mappings or attributes), ``{issued_at:%Y-%m-%d %H:%M}`` (any format spec), ``{note?}``
(empty when absent), ``{id_number:mask_id}`` / ``{name:mask_name}`` (printed masked, whatever
the caller passed), ``{requirement:@requirement}`` (a ``[choices]`` table); a list prints
joined with "、". Inside ``each`` the item's own fields come first, then ``{item}`` (the item
itself) and ``{index}`` (from 1), then the document's data. ``list`` and ``table`` blocks take
``each`` as their rows: ``item = "{name}"`` / ``columns = [{header, cell, width}]``. A
``group`` holds ``blocks`` of its own, for a conditional or repeated section.
"""

from __future__ import annotations

import string
import tomllib
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.identity import mask_id
from devices.printer import (
    Block,
    Field,
    Heading,
    ItemList,
    Media,
    Paragraph,
    PrintDocument,
    QrCode,
    Rule,
    Signature,
    Spacer,
    Table,
    TextSize,
)
from flows.privacy import mask_name

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "assets" / "print"

_FILTERS: Mapping[str, Callable[[str], str]] = {"mask_id": mask_id, "mask_name": mask_name}


class TemplateError(Exception):
    """A template that cannot be used, or data that does not fill it. The message names the
    file, the block and the field, never a value (values are often personal data)."""

    def __init__(self, path: Path | str, message: str, field: str | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.field = field


# -- template schema ---------------------------------------------------------------------------
_COMMON = {"type", "when", "unless", "each"}
# type -> (required keys, optional keys with the Python type each must have)
_SCHEMA: Mapping[str, tuple[frozenset[str], Mapping[str, type | tuple[type, ...]]]] = {
    "heading": (frozenset({"text"}), {"text": str, "level": int}),
    "paragraph": (frozenset({"text"}), {"text": str, "size": str, "center": bool, "bold": bool,
                                        "indent": bool}),
    "field": (frozenset({"label", "value"}), {"label": str, "value": str}),
    "list": (frozenset(), {"item": str, "items": list, "numbered": bool}),
    "table": (frozenset({"each", "columns"}), {"columns": list}),
    "rule": (frozenset(), {"dashed": bool}),
    "spacer": (frozenset(), {"lines": (int, float)}),
    "qr": (frozenset({"payload"}), {"payload": str, "caption": str, "size_mm": (int, float)}),
    "signature": (frozenset({"label"}), {"label": str, "value": str, "date": str}),
    "group": (frozenset({"blocks"}), {"blocks": list}),
}
_TEXT_KEYS = {"text", "label", "value", "item", "payload", "caption", "date"}


class _Missing(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _NoChoice(Exception):
    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.table = table


class _Formatter(string.Formatter):
    def __init__(self, choices: Mapping[str, Mapping[str, str]]) -> None:
        self.choices = choices

    def get_field(self, field_name: str, args: Sequence[Any],
                  kwargs: Mapping[str, Any]) -> tuple[Any, str]:
        optional = field_name.endswith("?")
        name = field_name.rstrip("?")
        try:
            value = _lookup(kwargs, name)
        except _Missing:
            if optional:
                return "", name
            raise
        if value is None:
            if optional:
                return "", name
            raise _Missing(name)
        return value, name

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec.startswith("@"):
            table = self.choices[format_spec[1:]]
            if str(value) not in table:
                raise _NoChoice(format_spec[1:])
            return table[str(value)]
        if format_spec in _FILTERS:
            return _FILTERS[format_spec](str(value)) if value != "" else ""
        if isinstance(value, list | tuple) and not format_spec:
            return "、".join(str(v) for v in value)
        return super().format_field(value, format_spec)


def _lookup(scope: Mapping[str, Any], name: str) -> Any:
    value: Any = scope
    for part in name.split("."):
        if isinstance(value, Mapping):
            if part not in value:
                raise _Missing(name)
            value = value[part]
        elif not part.startswith("_") and hasattr(value, part):
            value = getattr(value, part)
        else:
            raise _Missing(name)
    return value


def _present(scope: Mapping[str, Any], name: str) -> bool:
    try:
        value = _lookup(scope, name)
    except _Missing:
        return False
    return value is not None and value is not False and value != "" and not (
        isinstance(value, list | tuple | Mapping) and len(value) == 0)


@dataclass(frozen=True)
class _Template:
    kind: str
    path: Path
    title: str
    media: Media
    header: str
    meta: Mapping[str, str]
    choices: Mapping[str, Mapping[str, str]]
    blocks: tuple[Mapping[str, Any], ...]


class Templates:
    """The loaded templates, by kind."""

    def __init__(self, templates: Mapping[str, _Template]) -> None:
        self._templates = dict(templates)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._templates)

    def path(self, kind: str) -> Path:
        return self._template(kind).path

    def render(self, kind: str, data: Mapping[str, Any], job_key: str,
               media: Media | None = None) -> PrintDocument:
        """Fill the template of ``kind``; TemplateError names the file and the missing field."""
        template = self._template(kind)
        filler = _Filler(template, data)
        return PrintDocument(
            kind=kind, job_key=job_key,
            title=filler.format(template.title, "title"),
            blocks=tuple(filler.blocks(template.blocks, data, "blocks")),
            media=media or template.media,
            meta={k: filler.format(v, f"meta.{k}") for k, v in template.meta.items()},
            header=filler.format(template.header, "header"),
        )

    def _template(self, kind: str) -> _Template:
        if kind not in self._templates:
            raise TemplateError(f"{kind}.toml", f"no template for document kind {kind!r} "
                                f"(have: {', '.join(sorted(self._templates))})")
        return self._templates[kind]


def load_templates(directory: Path = TEMPLATE_DIR) -> Templates:
    """Read and check every ``*.toml`` in ``directory``; a bad file is a TemplateError."""
    files = sorted(Path(directory).glob("*.toml"))
    if not files:
        raise TemplateError(directory, "no print templates (*.toml) here")
    return Templates({path.stem: _load(path) for path in files})


def _load(path: Path) -> _Template:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as bad:
        raise TemplateError(path, f"unreadable: {bad}") from bad
    known = {"kind", "title", "media", "header", "meta", "choices", "blocks"}
    if unknown := set(raw) - known:
        raise TemplateError(path, f"unknown key(s) {', '.join(sorted(unknown))}")
    if raw.get("kind", path.stem) != path.stem:
        raise TemplateError(path, f"kind {raw['kind']!r} differs from the file name")
    if not isinstance(raw.get("title"), str):
        raise TemplateError(path, "title (a string) is required")
    try:
        media = Media(raw.get("media", Media.ROLL_80MM))
    except ValueError:
        raise TemplateError(path, f"media must be one of {', '.join(m.value for m in Media)}",
                            ) from None
    choices = raw.get("choices", {})
    meta = raw.get("meta", {})
    if not _is_table_of(choices, dict) or not all(
            _is_table_of(table, str) for table in choices.values()):
        raise TemplateError(path, "choices must be tables of strings")
    if not _is_table_of(meta, str):
        raise TemplateError(path, "meta must be a table of strings")
    header = raw.get("header", "")
    if not isinstance(header, str):
        raise TemplateError(path, "header must be a string")
    blocks = raw.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise TemplateError(path, "at least one [[blocks]] entry is required")
    for where, text in [("title", raw["title"]), ("header", header),
                        *((f"meta.{k}", v) for k, v in meta.items())]:
        _check_format(path, where, text, choices)
    _check_blocks(path, blocks, "blocks", choices)
    return _Template(path.stem, path, raw["title"], media, header, meta, choices, tuple(blocks))


def _is_table_of(value: object, kind: type) -> bool:
    return isinstance(value, dict) and all(isinstance(v, kind) for v in value.values())


def _check_blocks(path: Path, blocks: list[Any], where: str,
                  choices: Mapping[str, Mapping[str, str]]) -> None:
    for i, block in enumerate(blocks):
        here = f"{where}[{i}]"
        if not isinstance(block, dict) or block.get("type") not in _SCHEMA:
            raise TemplateError(path, f"{here}: type must be one of {', '.join(_SCHEMA)}")
        kind = block["type"]
        required, typed = _SCHEMA[kind]
        if missing := required - set(block):
            raise TemplateError(path, f"{here} ({kind}): missing key(s) "
                                f"{', '.join(sorted(missing))}")
        if unknown := set(block) - _COMMON - set(typed):
            raise TemplateError(path, f"{here} ({kind}): unknown key(s) "
                                f"{', '.join(sorted(unknown))}")
        for key in ("when", "unless", "each"):
            if key in block and not (isinstance(block[key], str) and block[key]):
                raise TemplateError(path, f"{here}.{key}: a field name is required")
        for key, value in block.items():
            if key in typed and (not isinstance(value, typed[key]) or isinstance(value, bool)
                                 and typed[key] in (int, (int, float))):
                raise TemplateError(path, f"{here}.{key}: wrong type")
            if key in _TEXT_KEYS:
                _check_format(path, f"{here}.{key}", value, choices)
        if kind == "paragraph" and block.get("size", "normal") not in set(TextSize):
            raise TemplateError(path, f"{here}.size: one of {', '.join(TextSize)}")
        if kind == "heading" and block.get("level", 1) not in (1, 2):
            raise TemplateError(path, f"{here}.level: 1 or 2")
        if kind == "list" and ("each" in block) == ("items" in block):
            raise TemplateError(path, f"{here} (list): needs either each or items")
        for n, item in enumerate(block.get("items", ())):
            if not isinstance(item, str):
                raise TemplateError(path, f"{here}.items[{n}]: must be a string")
            _check_format(path, f"{here}.items[{n}]", item, choices)
        if kind == "table":
            _check_columns(path, block["columns"], here, choices)
        if kind == "group":
            _check_blocks(path, block["blocks"], f"{here}.blocks", choices)


def _check_columns(path: Path, columns: list[Any], here: str,
                   choices: Mapping[str, Mapping[str, str]]) -> None:
    if not columns:
        raise TemplateError(path, f"{here}.columns: at least one column")
    for n, column in enumerate(columns):
        ok = (isinstance(column, dict) and set(column) <= {"header", "cell", "width"}
              and isinstance(column.get("header"), str) and isinstance(column.get("cell"), str)
              and isinstance(column.get("width", 1), int | float)
              and column.get("width", 1) > 0)
        if not ok:
            raise TemplateError(path, f"{here}.columns[{n}]: needs header and cell (strings), "
                                "optional width > 0")
        _check_format(path, f"{here}.columns[{n}].header", column["header"], choices)
        _check_format(path, f"{here}.columns[{n}].cell", column["cell"], choices)


def _check_format(path: Path, where: str, text: str,
                  choices: Mapping[str, Mapping[str, str]]) -> None:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as bad:
        raise TemplateError(path, f"{where}: bad format string ({bad})") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or "[" in name:
            raise TemplateError(path, f"{where}: fields are referenced by name, e.g. {{number}}")
        if conversion or (spec and "{" in spec):
            raise TemplateError(path, f"{where}: no !conversions or nested fields")
        if spec and spec.startswith("@") and spec[1:] not in choices:
            raise TemplateError(path, f"{where}: no [choices.{spec[1:]}] table")


# -- filling -----------------------------------------------------------------------------------
class _Filler:
    def __init__(self, template: _Template, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise TemplateError(template.path, "data must be a mapping of field names")
        self.template = template
        self.data = data
        self.formatter = _Formatter(template.choices)

    def format(self, text: str, where: str, scope: Mapping[str, Any] | None = None) -> str:
        try:
            return self.formatter.vformat(text, (), self.data if scope is None else scope)
        except _Missing as missing:
            raise TemplateError(self.template.path, f"{where}: missing field {missing.name!r}",
                                field=missing.name) from None
        except _NoChoice as bad:
            raise TemplateError(self.template.path, f"{where}: a value has no wording in "
                                f"[choices.{bad.table}]", field=bad.table) from None
        except (ValueError, TypeError) as bad:
            # A format spec that does not suit the value (e.g. a date format on a string).
            raise TemplateError(self.template.path, f"{where}: cannot format "
                                f"({type(bad).__name__})") from None

    def items(self, scope: Mapping[str, Any], name: str, where: str) -> Iterator[ChainMap]:
        try:
            values = _lookup(scope, name)
        except _Missing:
            raise TemplateError(self.template.path, f"{where}.each: missing field {name!r}",
                                field=name) from None
        if values is None:
            values = ()
        if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence):
            raise TemplateError(self.template.path, f"{where}.each: field {name!r} is not a list",
                                field=name)
        for index, item in enumerate(values, 1):
            own = item if isinstance(item, Mapping) else {}
            yield ChainMap(own, {"item": item, "index": index}, scope)  # type: ignore[arg-type]

    def blocks(self, specs: Sequence[Mapping[str, Any]], scope: Mapping[str, Any],
               where: str) -> Iterator[Block]:
        for i, spec in enumerate(specs):
            here = f"{where}[{i}] ({spec['type']})"
            if "when" in spec and not _present(scope, spec["when"]):
                continue
            if "unless" in spec and _present(scope, spec["unless"]):
                continue
            if "each" in spec and spec["type"] not in ("list", "table"):
                for inner in self.items(scope, spec["each"], here):
                    yield from self.block(spec, inner, here)
            else:
                yield from self.block(spec, scope, here)

    def block(self, spec: Mapping[str, Any], scope: Mapping[str, Any],
              here: str) -> Iterator[Block]:
        def fmt(key: str, default: str = "") -> str:
            return self.format(spec.get(key, default), f"{here}.{key}", scope)

        match spec["type"]:
            case "heading":
                yield Heading(fmt("text"), spec.get("level", 1))
            case "paragraph":
                yield Paragraph(fmt("text"), TextSize(spec.get("size", "normal")),
                                center=spec.get("center", False), bold=spec.get("bold", False),
                                indent=spec.get("indent", False))
            case "field":
                yield Field(fmt("label"), fmt("value"))
            case "list":
                if "items" in spec:
                    items = tuple(self.format(t, f"{here}.items", scope) for t in spec["items"])
                else:
                    items = tuple(self.format(spec.get("item", "{item}"), f"{here}.item", inner)
                                  for inner in self.items(scope, spec["each"], here))
                if items:
                    yield ItemList(items, spec.get("numbered", True))
            case "table":
                columns = spec["columns"]
                rows = tuple(
                    tuple(self.format(c["cell"], f"{here}.cell", inner) for c in columns)
                    for inner in self.items(scope, spec["each"], here))
                if rows:
                    yield Table(tuple(self.format(c["header"], f"{here}.header", scope)
                                      for c in columns), rows,
                                tuple(float(c.get("width", 1)) for c in columns))
            case "rule":
                yield Rule(spec.get("dashed", False))
            case "spacer":
                yield Spacer(float(spec.get("lines", 1.0)))
            case "qr":
                yield QrCode(fmt("payload"), fmt("caption"), float(spec.get("size_mm", 30.0)))
            case "signature":
                yield Signature(fmt("label"), fmt("value"), fmt("date"))
            case "group":
                yield from self.blocks(spec["blocks"], scope, f"{here}.blocks")
