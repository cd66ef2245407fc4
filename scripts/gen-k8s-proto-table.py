#!/usr/bin/env python3
"""Write ``src/pilothouse/api/protobuf_table.py``: the wire layout of Kubernetes' protobuf
messages, as a data table for ``pilothouse.api.protobuf``.

Usage::

    git -C …/kubernetes+api/repo archive v0.32.0 | tar -x -C /tmp/api
    git -C …/kubernetes+apimachinery/repo archive v0.32.0 | tar -x -C /tmp/apimachinery
    scripts/gen-k8s-proto-table.py --api /tmp/api --apimachinery /tmp/apimachinery \
        --version v0.32.0 > src/pilothouse/api/protobuf_table.py

Two sources are read, because neither alone says how a message looks in JSON:

* ``generated.proto``: message names, field numbers, wire types, repeated and map
  fields, and the message type of each field;
* the Go structs beside it (``types.go`` …): the JSON name of each field (the proto
  name differs for inlined structs such as ``Volume.volumeSource``), ``omitempty``,
  whether the field is a pointer (a present zero value then still shows), and named
  slice types (``type ExtraValue []string``) that JSON shows as a bare array.

Go fields are joined to proto fields by the number in their ``protobuf:"…"`` tag.
The script fails loudly when the two disagree, so a new upstream version cannot
produce a silently wrong table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from dataclasses import dataclass, field

# k8s.io/api packages to include (every message in each); apimachinery's are added.
API_PACKAGES = (
    "core/v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "coordination/v1",
    "discovery/v1",
    "storage/v1",
    "events/v1",
    "scheduling/v1",
    "autoscaling/v1",
    "autoscaling/v2",
    "authentication/v1",
    "authorization/v1",
    "rbac/v1",
    "networking/v1",
    "certificates/v1",
    "admissionregistration/v1",
)
MACHINERY_PACKAGES = (
    "pkg/apis/meta/v1",
    "pkg/api/resource",
    "pkg/util/intstr",
    "pkg/runtime",
)

# Field kinds, shared with pilothouse.api.protobuf (the table carries this legend and
# a unit test checks that both sides agree).
KIND_CODES = {
    "string": 1,
    "bytes": 2,
    "bool": 3,
    "int32": 4,
    "int64": 5,
    "uint32": 6,
    "uint64": 7,
    "sint32": 8,
    "sint64": 9,
    "double": 10,
    "float": 11,
    "fixed32": 12,
    "fixed64": 13,
    "sfixed32": 14,
    "sfixed64": 15,
    "message": 20,
    "map": 21,
    # Messages whose Go type has a JSON form of its own.
    "time": 30,
    "microtime": 31,
    "duration": 32,
    "quantity": 33,
    "intorstring": 34,
    "fieldsv1": 35,
    "rawextension": 36,
    "unknown": 37,
    "wrapper": 38,  # a named slice type: JSON is the bare list of its items
}
FLAG_CODES = {
    "omit_zero": 1,  # omitempty on a non-pointer scalar or slice: a zero value is dropped
    "inline": 2,  # json:",inline": the message's fields join the parent object
    "repeated": 4,
    "no_json": 8,  # json:"-": decoded but never shown
}
SPECIAL = {
    "meta.v1.Time": "time",
    "meta.v1.MicroTime": "microtime",
    "meta.v1.Duration": "duration",
    "meta.v1.FieldsV1": "fieldsv1",
    "resource.Quantity": "quantity",
    "resource.QuantityValue": "quantity",
    "intstr.IntOrString": "intorstring",
    "runtime.RawExtension": "rawextension",
    "runtime.Unknown": "unknown",
}
SCALARS = {k for k, v in KIND_CODES.items() if v < 20}

_FIELD_RE = re.compile(
    r"^(?:(?P<label>optional|repeated|required)\s+)?(?P<type>[\w.]+)\s+(?P<name>\w+)\s*=\s*(?P<num>\d+)\s*(?:\[(?P<opts>[^\]]*)\])?;$"
)
_MAP_RE = re.compile(
    r"^map<\s*(?P<key>[\w.]+)\s*,\s*(?P<value>[\w.]+)\s*>\s+(?P<name>\w+)\s*=\s*(?P<num>\d+);$"
)


def short_package(proto_package: str) -> str:
    """``k8s.io.api.core.v1`` → ``core.v1``; ``k8s.io.apimachinery.pkg.apis.meta.v1`` → ``meta.v1``."""
    for prefix in (
        "k8s.io.api.",
        "k8s.io.apimachinery.pkg.apis.",
        "k8s.io.apimachinery.pkg.api.",
        "k8s.io.apimachinery.pkg.util.",
        "k8s.io.apimachinery.pkg.",
    ):
        if proto_package.startswith(prefix):
            return proto_package[len(prefix) :]
    raise SystemExit(f"unexpected proto package {proto_package}")


@dataclass
class ProtoField:
    name: str
    number: int
    label: str  # optional | repeated | map
    type: str  # scalar name or qualified short message name
    key_type: str = ""  # for maps


@dataclass
class ProtoMessage:
    name: str  # qualified short name, e.g. core.v1.Pod
    fields: list[ProtoField] = field(default_factory=list)


@dataclass
class GoField:
    name: str
    go_type: str
    json_name: str
    omitempty: bool
    inline: bool
    number: int | None


@dataclass
class GoPackage:
    structs: dict[str, list[GoField]] = field(default_factory=dict)
    slices: set[str] = field(default_factory=set)  # named slice types
    defined: dict[str, str] = field(default_factory=dict)  # type List metav1.List
    with_type_meta: set[str] = field(default_factory=set)


def _strip_comments(text: str) -> str:
    # Line comments first: they may hold "/*" (paths such as "pods/*").
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def parse_proto(path: pathlib.Path) -> tuple[str, list[ProtoMessage]]:
    text = _strip_comments(path.read_text())
    package = re.search(r"^package\s+([\w.]+);", text, re.M)
    assert package, path
    short = short_package(package.group(1))

    def qualify(type_name: str) -> str:
        type_name = type_name.lstrip(".")
        if type_name in SCALARS:
            return type_name
        if "." in type_name:
            pkg, _, name = type_name.rpartition(".")
            return f"{short_package(pkg)}.{name}"
        return f"{short}.{type_name}"

    messages = []
    for match in re.finditer(r"^message\s+(\w+)\s*\{(.*?)^\}", text, re.M | re.S):
        body = match.group(2)
        if re.search(r"^\s*(message|enum|oneof)\b", body, re.M):
            raise SystemExit(f"{path}: nested declarations in {match.group(1)} are not supported")
        msg = ProtoMessage(f"{short}.{match.group(1)}")
        for line in (ln.strip() for ln in body.splitlines()):
            if not line or line.startswith(("reserved ", "option ")):
                continue
            if m := _MAP_RE.match(line):
                msg.fields.append(
                    ProtoField(
                        m["name"],
                        int(m["num"]),
                        "map",
                        qualify(m["value"]),
                        key_type=qualify(m["key"]),
                    )
                )
            elif m := _FIELD_RE.match(line):
                label = "repeated" if m["label"] == "repeated" else "optional"
                msg.fields.append(ProtoField(m["name"], int(m["num"]), label, qualify(m["type"])))
            else:
                raise SystemExit(f"{path}: cannot read line in {msg.name}: {line!r}")
        messages.append(msg)
    return short, messages


_STRUCT_RE = re.compile(r"^type\s+(\w+)\s+struct\s*\{(?:\}|[ \t]*\n(.*?)^\})", re.M | re.S)
_GO_FIELD_RE = re.compile(r"^(?:(?P<name>\w+)\s+)?(?P<type>[^\s`]+)\s*(?:`(?P<tag>[^`]*)`)?$")
_TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go(directory: pathlib.Path) -> GoPackage:
    pkg = GoPackage()
    for path in sorted(directory.glob("*.go")):
        if (
            path.name.endswith(("_test.go", "_fuzz.go"))
            or path.name.startswith("zz_generated")
            or path.name == "generated.pb.go"
        ):
            continue
        text = _strip_comments(path.read_text())
        for m in re.finditer(r"^type\s+(\w+)\s+metav1\.(\w+)\s*$", text, re.M):
            pkg.defined[m.group(1)] = f"meta.v1.{m.group(2)}"
        for m in re.finditer(r"^type\s+(\w+)\s+\[\](\w+)\s*$", text, re.M):
            if m.group(2) != "byte":
                pkg.slices.add(m.group(1))
        for m in _STRUCT_RE.finditer(text):
            if not m.group(1)[0].isupper():
                continue  # unexported: never a wire type
            fields = []
            for line in (ln.strip() for ln in (m.group(2) or "").splitlines()):
                if not line:
                    continue
                fm = _GO_FIELD_RE.match(line)
                if not fm and "`" not in line:
                    continue  # e.g. "Name, Doc string": untagged, so not on the wire
                if not fm:
                    raise SystemExit(f"{path}: cannot read struct field in {m.group(1)}: {line!r}")
                tags = dict(_TAG_RE.findall(fm["tag"] or ""))
                go_type = fm["type"]
                name = fm["name"] or go_type.lstrip("*").rpartition(".")[2]
                if go_type.lstrip("*").rpartition(".")[2] == "TypeMeta" and fm["name"] is None:
                    pkg.with_type_meta.add(m.group(1))
                json_tag = tags.get("json", "")
                json_name, *options = json_tag.split(",") if json_tag else [name]
                number = None
                if "protobuf" in tags and tags["protobuf"] != "-":
                    number = int(tags["protobuf"].split(",")[1])
                fields.append(
                    GoField(
                        name=name,
                        go_type=go_type,
                        json_name=json_name or ("" if "inline" in options else name),
                        omitempty="omitempty" in options,
                        inline="inline" in options or (fm["name"] is None and not json_name),
                        number=number,
                    )
                )
            pkg.structs[m.group(1)] = fields
    return pkg


def build(api: pathlib.Path, machinery: pathlib.Path) -> tuple[dict, dict, dict]:
    sources: list[tuple[pathlib.Path, str]] = [(api / p, p) for p in API_PACKAGES]
    sources += [(machinery / p, p) for p in MACHINERY_PACKAGES]
    messages: dict[str, ProtoMessage] = {}
    go: dict[str, GoPackage] = {}
    groups: dict[str, str] = {}  # short package → apiVersion
    for directory, rel in sources:
        short, msgs = parse_proto(directory / "generated.proto")
        go[short] = parse_go(directory)
        for msg in msgs:
            messages[msg.name] = msg
        doc = (directory / "doc.go").read_text() if (directory / "doc.go").exists() else ""
        group = re.search(r"^// \+groupName=(.*)$", doc, re.M)
        if rel in API_PACKAGES:
            group_name = group.group(1).strip() if group else rel.split("/")[0]
            version = rel.split("/")[1]
            groups[short] = f"{group_name}/{version}" if group_name else version
        elif short == "meta.v1":
            groups[short] = "meta.k8s.io/v1"

    table: dict[str, dict[int, tuple]] = {}
    problems: list[str] = []
    for name, msg in sorted(messages.items()):
        if name in SPECIAL:
            continue
        pkg_short, _, type_name = name.rpartition(".")
        pkg = go[pkg_short]
        if type_name in pkg.slices:
            if [f.number for f in msg.fields] != [1] or msg.fields[0].label != "repeated":
                problems.append(f"{name}: slice type without a single repeated items field")
            table[name] = {
                1: (
                    "items",
                    KIND_CODES[kind_of(msg.fields[0].type, messages, go)],
                    ref_of(msg.fields[0].type),
                    FLAG_CODES["repeated"],
                )
            }
            continue
        if type_name in pkg.defined:
            # A defined type over another package's struct has that struct's fields.
            base_pkg, _, base = pkg.defined[type_name].rpartition(".")
            pkg.structs[type_name] = go[base_pkg].structs[base]
            if base in go[base_pkg].with_type_meta:
                pkg.with_type_meta.add(type_name)
        go_fields = {f.number: f for f in pkg.structs.get(type_name, []) if f.number is not None}
        if type_name not in pkg.structs:
            problems.append(f"{name}: no Go struct")
            continue
        entry: dict[int, tuple] = {}
        for pf in msg.fields:
            gf = go_fields.get(pf.number)
            if gf is None:
                problems.append(
                    f"{name}.{pf.name} = {pf.number}: no Go field with that protobuf tag"
                )
                continue
            flags = 0
            pointer = gf.go_type.startswith("*")
            if pf.label == "map":
                kind = "map"
                value_kind = kind_of(pf.type, messages, go)
                ref: object = (
                    KIND_CODES[kind_of(pf.key_type, messages, go)],
                    KIND_CODES[value_kind],
                    ref_of(pf.type),
                )
            else:
                kind = kind_of(pf.type, messages, go)
                ref = ref_of(pf.type)
                if pf.label == "repeated":
                    flags |= FLAG_CODES["repeated"]
            if gf.omitempty and not pointer and (kind in SCALARS or kind == "wrapper"):
                flags |= FLAG_CODES["omit_zero"]
            if gf.inline:
                if kind != "message" or pointer or pf.label != "optional":
                    problems.append(f"{name}.{pf.name}: inline field that is not a plain struct")
                flags |= FLAG_CODES["inline"]
            if gf.json_name == "-":
                flags |= FLAG_CODES["no_json"]
            entry[pf.number] = (gf.json_name, KIND_CODES[kind], ref, flags)
        table[name] = entry

    for name, entry in table.items():
        for number, (_json, _kind, ref, _flags) in entry.items():
            refs = [ref[2]] if isinstance(ref, tuple) else [ref]
            for r in refs:
                if r and r not in messages:
                    problems.append(f"{name} field {number}: unknown message {r}")
    if problems:
        raise SystemExit("cannot build the table:\n  " + "\n  ".join(problems))

    kinds: dict[str, str] = {}
    for short, api_version in sorted(groups.items()):
        for type_name in sorted(go[short].with_type_meta):
            name = f"{short}.{type_name}"
            if name in table:
                kinds[f"{api_version} {type_name}"] = name
    return table, kinds, groups


def kind_of(type_name: str, messages: dict[str, ProtoMessage], go: dict[str, GoPackage]) -> str:
    if type_name in SCALARS:
        return type_name
    if type_name in SPECIAL:
        return SPECIAL[type_name]
    if type_name not in messages:
        raise SystemExit(f"unknown message type {type_name}")
    pkg_short, _, name = type_name.rpartition(".")
    if name in go[pkg_short].slices:
        return "wrapper"
    return "message"


def ref_of(type_name: str) -> str:
    return "" if type_name in SCALARS or type_name in SPECIAL else type_name


def render(table: dict, kinds: dict, version: str) -> str:
    # The messages are one JSON text, one message a line: it compiles in no time
    # even where no bytecode is cached, parses in about a millisecond, and diffs well.
    lines = []
    for name in sorted(table):
        fields = [[number, *table[name][number]] for number in sorted(table[name])]
        lines.append(f"{json.dumps(name)}:{json.dumps(fields, separators=(',', ':'))}")
    messages = "{\n" + ",\n".join(lines) + "\n}"
    if '"""' in messages or "\\" in messages:
        raise SystemExit("the message table cannot be written as a plain string literal")
    out = [
        '"""Wire layout of Kubernetes protobuf messages, for :mod:`pilothouse.api.protobuf`.',
        "",
        f"Generated by scripts/gen-k8s-proto-table.py from k8s.io/api and k8s.io/apimachinery {version}",
        "(their generated.proto files and Go struct tags); do not edit by hand.",
        "",
        "``MESSAGES_JSON`` maps each message to its fields, ``[number, json name, kind, ref,",
        "flags]``; ``ref`` names the field's message type, or for a map is ``[key kind, value",
        "kind, value message]``. ``KINDS`` maps ``'<apiVersion> <kind>'`` to the message of",
        "that kind. Imported lazily, on the first protobuf body.",
        '"""',
        "",
        *_dict_literal("KIND_CODES: dict[str, int]", KIND_CODES),
        "",
        *_dict_literal("FLAG_CODES: dict[str, int]", FLAG_CODES),
        "",
        *_dict_literal("KINDS: dict[str, str]", dict(sorted(kinds.items()))),
    ]
    out.append("")
    out.append(f'MESSAGES_JSON = """{messages}"""')
    return "\n".join(out) + "\n"


def _dict_literal(target: str, values: dict) -> list[str]:
    return [
        f"{target} = {{",
        *(f"    {json.dumps(k)}: {json.dumps(v)}," for k, v in values.items()),
        "}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", type=pathlib.Path, required=True, help="a k8s.io/api checkout")
    parser.add_argument(
        "--apimachinery", type=pathlib.Path, required=True, help="a k8s.io/apimachinery checkout"
    )
    parser.add_argument("--version", default="v0.32.0", help="the tag both checkouts are at")
    args = parser.parse_args()
    table, kinds, _groups = build(args.api, args.apimachinery)
    sys.stdout.write(render(table, kinds, args.version))


if __name__ == "__main__":
    main()
