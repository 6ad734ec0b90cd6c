"""Typed configuration keys: the ``(type)`` comments of the property files are the schema.

RecBole annotates its properties with a comment that starts with the type, and the plugin's
files do the same::

    epochs: 300                     # (int) The number of training epochs.
    stage_epochs: [1, 1, 1]         # (list of int >= 0) Epochs of stages 1, 2, 3
    steps_per_epoch: ~              # (int >= 1) Cap on batches per epoch (~ = the whole split)
    lr_schedule: cosine             # (str: cosine | constant) After the warm-up...

Grammar of what stands between the parentheses (anything else is not checked):

- a type: ``int``, ``float`` (an int is a number too), ``bool``, ``str``, ``list``, ``dict``,
  ``list of <type>``;
- optionally a bound after the type: ``>= n``, ``> n``, ``<= n``, ``< n`` (on each element of
  a ``list of``);
- optionally choices after a colon: ``str: a | b | c``;
- alternatives joined by ``or`` (``list or int``; ``None`` accepts ``~``); text after a comma
  (``str, optional``) is ignored.

``~`` (None) is accepted where the default is ``~``, where the annotation says ``or None``, and
for ``str`` / ``dict`` keys. Plain ``str`` keys take any scalar (RecBole converts ``--gpu_id=0``
to an int). :class:`recbole_speeder.config.Config` checks every value that the user gave
(config files, command line, config dict) against the annotations of the property files the run
reads, before any data, feature or LLM is loaded.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")
_ANNOTATION = re.compile(r"#\s*\(([^()]*)\)")
_ALTERNATIVE = re.compile(
    r"^(?:list of\s+)?(int|float|str|string|bool|list|dict)"
    r"\s*(?:(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?))?\s*(?::\s*(.+))?$"
)
_TYPE_NAMES = {"string": "str"}


@dataclass(frozen=True)
class Kind:
    """One accepted kind of value: a type, an optional bound, optional choices."""

    name: str  # int, float, str, bool, list, dict
    element: "Kind" = None  # list of <element>
    bound: tuple = None  # (operator, number)
    choices: tuple = None


@dataclass(frozen=True)
class KeySpec:
    kinds: tuple
    none_ok: bool
    text: str  # the annotation as written


def _parse_alternative(text):
    is_list_of = text.startswith("list of")
    match = _ALTERNATIVE.match(text)
    if match is None:
        return None
    name, op, number, choices = match.groups()
    name = _TYPE_NAMES.get(name, name)
    bound = (op, float(number)) if op else None
    choices = tuple(c.strip() for c in choices.split("|") if c.strip()) if choices else None
    if is_list_of:
        return Kind("list", element=Kind(name, bound=bound, choices=choices))
    return Kind(name, bound=bound, choices=choices)


def parse_annotation(text):
    """:class:`KeySpec` of an annotation such as ``int >= 1`` or ``list or int or None``;
    None when the text is not in the grammar (then the key is not checked)."""
    text = text.split(",")[0].strip()
    kinds, none_ok = [], False
    for alternative in re.split(r"\s+or\s+", text):
        alternative = alternative.strip()
        if alternative in ("None", "~"):
            none_ok = True
            continue
        kind = _parse_alternative(alternative)
        if kind is None:
            return None
        kinds.append(kind)
    if not kinds:
        return None
    return KeySpec(tuple(kinds), none_ok, text)


def annotated_keys(path):
    """``[(key, annotation, meaning)]`` of the top-level keys of one property file that carry an
    annotation, in file order: the annotation as written between the parentheses, and the rest of
    its comment joined with the indented comment lines that continue it."""
    entries, current = [], None
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            match = _KEY_LINE.match(line)
            if match is None:
                if current is not None and line[:1].isspace() and "#" in line:
                    current[2].append(line.split("#", 1)[1].strip())
                continue
            annotation = _ANNOTATION.search(line, match.end())
            if annotation is None:
                current = None
                continue
            current = (match.group(1), annotation.group(1).strip(), [line[annotation.end():].strip()])
            entries.append(current)
    return [(key, text, " ".join(part for part in meaning if part)) for key, text, meaning in entries]


@lru_cache(maxsize=None)
def file_annotations(path):
    """``{key: KeySpec}`` of the top-level keys of one property file that carry an annotation."""
    specs = {}
    for key, text, _ in annotated_keys(path):
        spec = parse_annotation(text)
        if spec is not None:
            specs[key] = spec
    return specs


# -- checking -----------------------------------------------------------------------------
def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_matches(value, kind):
    if kind.name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind.name == "float":
        return _is_number(value)
    if kind.name == "bool":
        return isinstance(value, bool)
    if kind.name == "str":
        return not isinstance(value, (list, tuple, dict))
    if kind.name == "dict":
        return isinstance(value, dict)
    if kind.name == "list":
        if not isinstance(value, (list, tuple)):
            return False
        return kind.element is None or all(_type_matches(v, kind.element) for v in value)
    return False


def _within(value, kind):
    """Whether ``value`` (of ``kind``'s type) keeps ``kind``'s bound and choices."""
    if kind.name == "list" and kind.element is not None:
        return all(_within(v, kind.element) for v in value)
    if kind.bound is not None and _is_number(value):
        op, limit = kind.bound
        if not {">=": value >= limit, ">": value > limit, "<=": value <= limit, "<": value < limit}[op]:
            return False
    if kind.choices is not None and str(value).lower() not in {c.lower() for c in kind.choices}:
        return False
    return True


def _number(x):
    return int(x) if float(x).is_integer() else x


def _bound_phrase(kind):
    op, limit = kind.bound
    limit = _number(limit)
    if op == ">" and limit == 0:
        return "positive"
    return {">=": f"at least {limit}", ">": f"greater than {limit}", "<=": f"at most {limit}",
            "<": f"less than {limit}"}[op]


def describe(kind, plural=False):
    """Words for what ``kind`` accepts: ``an integer of at least 1``, ``a list of integers``..."""
    if kind.choices:
        return "one of " + ", ".join(kind.choices)
    if kind.name == "list":
        if kind.element is None:
            return "a list such as [a, b]"
        return "a list of " + describe(kind.element, plural=True)
    noun = {"int": ("an integer", "integers"), "float": ("a number", "numbers"),
            "bool": ("True or False", "True / False"), "str": ("a string", "strings"),
            "dict": ("a mapping (key: value)", "mappings")}[kind.name][plural]
    if kind.bound is None:
        return noun
    phrase = _bound_phrase(kind)
    if phrase == "positive":
        return f"positive {noun.split(' ', 1)[-1]}" if plural else f"a positive {noun.split(' ', 1)[-1]}"
    return f"{noun} ({'each ' if plural else ''}{phrase})"


def describe_spec(spec, default=None):
    words = " or ".join(describe(k) for k in spec.kinds)
    if spec.none_ok or default is None:
        words += " or ~"
    return words


def _show(value):
    return "~" if value is None else repr(value)


def check_value(key, value, spec, default=None, where=""):
    """None when ``value`` is accepted by ``spec``, else the one-line message (key, value, accepted);
    ``where`` (e.g. ``on the command line``) says where the value came from.

    ``default`` is the value of the property files: ``~`` there means ``~`` is accepted, and where
    the default itself does not fit the annotation, a value of the default's own type is taken (an
    annotation that is wrong never refuses what the file itself holds)."""
    got = f"got {_show(value)} {where}".rstrip()
    where = f" ({where})" if where else ""
    if value is None:
        if spec.none_ok or default is None or any(k.name in ("str", "dict") for k in spec.kinds):
            return None
        return f"{key} must be {describe_spec(spec, default)} ({got})."
    typed = [k for k in spec.kinds if _type_matches(value, k)]
    if not typed:
        annotation_wrong = default is not None and not any(_type_matches(default, k) for k in spec.kinds)
        same_as_default = annotation_wrong and (
            type(value) is type(default) or (_is_number(value) and _is_number(default)))
        if same_as_default:
            return None
        example = f", e.g. {default!r}" if isinstance(default, (list, dict)) and default else ""
        return f"{key} must be {describe_spec(spec, default)}{example} ({got})."
    if any(_within(value, k) for k in typed):
        return None
    kind = typed[0]
    if kind.choices:
        return f"{key}: {_show(value)} is not one of {', '.join(kind.choices)}{where}."
    if kind.element is not None and kind.element.choices:
        return f"{key}: {_show(value)} holds a value that is not one of {', '.join(kind.element.choices)}{where}."
    if kind.name == "list":
        return f"{key} must hold {describe(kind.element, plural=True)} ({got})."
    return f"{key} must be {_bound_phrase(kind)} ({got})."
