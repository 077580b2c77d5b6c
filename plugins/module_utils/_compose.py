# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose files in, one checked compose project out: load, interpolate, merge, normalise, validate.

Pure (no subprocess, no writes). Every bad input raises :class:`InputError` whose message names the file, the
line (when the YAML parser gives one), the service and the key, and says what to do; ``details`` carries the same
as structured keys (``file``, ``line``, ``service``, ``key``, ``fix``).

Loading is bounded in time and memory on hostile input: at most :data:`MAX_BYTES` per file, no NUL or other
control bytes, at most :data:`MAX_ALIASES` aliases, :data:`MAX_DEPTH` levels of nesting and :data:`MAX_NODES`
nodes once every alias is expanded (a "billion laughs" file has a few dozen aliases but 10^9 expanded nodes and
is refused before anything walks it); an alias that points into its own anchor is refused. Scalars are resolved
as Compose's Go loaders (go-yaml v3) read them: ``yes``/``on`` stay strings, ``80:80`` stays a string, ``0755``
is octal (493).

Merging several files follows ``docker stack deploy -c a.yml -c b.yml`` (docker/cli ``cli/compose/loader/merge.go``):
each file is interpolated on its own, then services are merged by name: mappings key by key, a later scalar wins,
lists are appended, except ``ports`` (union of distinct entries), ``secrets``/``configs`` (keyed by ``source``),
``volumes`` (keyed by ``target``) and ``command``/``entrypoint``/``healthcheck.test`` (replaced); top-level
``volumes``, ``networks``, ``secrets`` and ``configs`` are replaced name by name. Relative paths resolve against
the first file's directory, as the Docker CLI does.
"""

from __future__ import annotations

import math
import os
import re

try:
    import yaml
    from yaml.composer import Composer
    from yaml.constructor import ConstructorError, SafeConstructor
    from yaml.events import AliasEvent, ScalarEvent
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode
    from yaml.resolver import Resolver

    try:
        from yaml._yaml import CParser  # libyaml's event parser; composition stays in Python (bounded)

        _PARSER_BASES = (CParser,)
    except ImportError:  # pragma: no cover - PyYAML without libyaml
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        _PARSER_BASES = (Reader, Scanner, Parser)
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised only without PyYAML
    HAS_YAML = False
    YAML_IMPORT_ERROR = _exc

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

MAX_BYTES = 4 * 1024 * 1024
MAX_ALIASES = 10000
MAX_DEPTH = 64
MAX_NODES = 500000
MAX_PORTS_PER_SERVICE = 1000
_LINE_DEPTH = 8  # how deep key paths keep their line numbers (deeper keys report their nearest parent's line)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VAR_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
INTERPOLATED_SECTIONS = ("services", "networks", "volumes", "secrets", "configs")
GPU_KINDS = ("nvidia-gpu", "gpu", "nvidia.com/gpu")


def _err(msg, fix, file=None, line=None, service=None, key=None):
    """An InputError whose text reads ``file:line: service 'x', key 'k': msg. Fix: fix``."""
    where = []
    if file:
        where.append("%s:%s" % (file, line) if line else str(file))
    subject = []
    if service:
        subject.append("service '%s'" % service)
    if key:
        subject.append("key '%s'" % key)
    text = ": ".join(filter(None, [" ".join(where), ", ".join(subject), msg]))
    if fix:
        text += ". Fix: " + fix
    return InputError(text, file=file, line=line, service=service, key=key, fix=fix)


# ---------------------------------------------------------------------------------------------------------------
# Bounded YAML loading
# ---------------------------------------------------------------------------------------------------------------

if HAS_YAML:

    class _Bounded(Exception):
        """Raised inside the composer when a bound is exceeded (turned into an InputError by the caller)."""

        def __init__(self, msg, mark=None, fix="remove the aliases or the nesting: a compose file never needs this many"):
            super().__init__(msg)
            self.mark = mark
            self.fix = fix

    def _ctor_int(loader, node):
        text = loader.construct_scalar(node).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text.startswith("0o"):
            return sign * int(text[2:], 8)
        if text.startswith("0x"):
            return sign * int(text[2:], 16)
        if len(text) > 1 and text.startswith("0") and set(text) <= set("01234567"):
            return sign * int(text, 8)  # Go's ParseInt(s, 0, 64), as compose-go and the Docker CLI read it
        return sign * int(text, 10)

    def _ctor_refused(loader, node):
        raise ConstructorError(None, None, "the tag %s is not allowed in a compose file" % node.tag, node.start_mark)

    def _ctor_str_key_mapping(loader, node):
        data = {}
        yield data
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(None, None, "a mapping key must be a scalar", key_node.start_mark)
            # keys keep their text (`NULL:`, `TRUE:`, `0755:` are names), as compose's map[string] keys do
            data[key_node.value] = loader.construct_object(value_node, deep=True)

    class BoundedLoader(Composer, *_PARSER_BASES, SafeConstructor, Resolver):
        """A safe loader for untrusted compose files (``yaml.SafeLoader`` semantics with YAML 1.2 core scalars).

        libyaml (when present) turns bytes into events; composition runs in Python so that every alias, node and
        nesting level is counted as it is read. ``load()`` then measures the expanded size of the node graph with
        memoisation (linear in the number of distinct nodes) and refuses cycles, before anything is constructed.
        """

        yaml_implicit_resolvers = {}
        yaml_constructors = dict(SafeConstructor.yaml_constructors)

        def __init__(self, stream):
            if len(_PARSER_BASES) == 1:
                _PARSER_BASES[0].__init__(self, stream)  # pylint: disable=non-parent-init-called
            else:  # pragma: no cover - PyYAML without libyaml
                _PARSER_BASES[0].__init__(self, stream)  # pylint: disable=non-parent-init-called
                _PARSER_BASES[1].__init__(self)  # pylint: disable=non-parent-init-called
                _PARSER_BASES[2].__init__(self)  # pylint: disable=non-parent-init-called
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.aliases = 0
            self.nodes = 0
            self.depth = 0

        def compose_node(self, parent, index):
            if self.check_event(AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise _Bounded("more than %d YAML aliases" % MAX_ALIASES, self.peek_event().start_mark)
                return Composer.compose_node(self, parent, index)
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise _Bounded("more than %d YAML nodes" % MAX_NODES, self.peek_event().start_mark)
            if self.check_event(ScalarEvent):
                return Composer.compose_node(self, parent, index)
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Bounded("nested more than %d levels deep" % MAX_DEPTH, self.peek_event().start_mark)
            try:
                return Composer.compose_node(self, parent, index)
            finally:
                self.depth -= 1

        def load(self):
            """(node, data) of the single document ((None, None) for an empty stream), checked against the bounds."""
            node = self.get_single_node()
            if node is None:
                return None, None
            _expanded_size(node)
            return node, self.construct_document(node)

    BoundedLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    BoundedLoader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
    BoundedLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        list("-+0123456789."))
    BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
    BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
    BoundedLoader.add_constructor("tag:yaml.org,2002:int", _ctor_int)
    BoundedLoader.add_constructor("tag:yaml.org,2002:map", _ctor_str_key_mapping)
    for _tag in ("binary", "set", "omap", "pairs", "timestamp"):
        BoundedLoader.add_constructor("tag:yaml.org,2002:" + _tag, _ctor_refused)
    BoundedLoader.add_constructor(None, _ctor_refused)


_RECURSIVE_FIX = "an anchor cannot contain an alias to itself: copy the values instead"


def _expanded_size(root):
    """Nodes in ``root`` with every alias expanded, computed once per distinct node; refuses cycles and bombs."""
    memo = {}
    # iterative post-order walk (no recursion limit on deep input)
    stack = [(root, False)]
    active = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            if isinstance(node, MappingNode):
                children = [c for pair in node.value for c in pair]
            else:
                children = node.value
            size = 1 + sum(memo[id(c)] for c in children)
            if size > MAX_NODES:
                raise _Bounded("more than %d YAML nodes once aliases are expanded (an alias bomb?)" % MAX_NODES, node.start_mark)
            memo[key] = size
            continue
        if key in memo:
            continue
        if isinstance(node, ScalarNode):
            memo[key] = 1
            continue
        if key in active:
            raise _Bounded("an alias refers to a collection that contains it (a recursive alias)", node.start_mark, _RECURSIVE_FIX)
        active.add(key)
        stack.append((node, True))
        children = [c for pair in node.value for c in pair] if isinstance(node, MappingNode) else node.value
        for child in children:
            if id(child) in active:
                raise _Bounded("an alias refers to a collection that contains it (a recursive alias)", child.start_mark, _RECURSIVE_FIX)
            if id(child) not in memo:
                stack.append((child, False))
    return memo[id(root)]


def _scalar_text(value):
    """A scalar as compose's Go loaders print it: booleans lower-case, integers without '.0'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and not math.isinf(value):
        return str(int(value))
    return str(value)


def _record_lines(node, path, lines, depth=0):
    """``lines[path] = 1-based line`` for every key and list item down to _LINE_DEPTH (merge keys flattened)."""
    if depth >= _LINE_DEPTH:
        return
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (isinstance(key_node, ScalarNode) and key_node.value == "<<"):
                merged = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for sub in merged:
                    _record_lines(sub, path, lines, depth)
                continue
            if not isinstance(key_node, ScalarNode):
                continue
            sub = path + (key_node.value,)
            lines[sub] = key_node.start_mark.line + 1
            _record_lines(value_node, sub, lines, depth + 1)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            sub = path + (index,)
            lines.setdefault(sub, item.start_mark.line + 1)
            _record_lines(item, sub, lines, depth + 1)


def _duplicate_keys(node, path, file, depth=0):
    """Compose refuses a key given twice in one mapping (YAML says keys are unique); PyYAML would keep the last."""
    if depth >= _LINE_DEPTH or not isinstance(node, (MappingNode, SequenceNode)):
        return
    if isinstance(node, SequenceNode):
        for item in node.value:
            _duplicate_keys(item, path, file, depth + 1)
        return
    seen = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value != "<<":
            if key_node.value in seen:
                raise _err("the key '%s' is given twice (first on line %d)" % (key_node.value, seen[key_node.value]),
                           "keep one of them", file, key_node.start_mark.line + 1,
                           key=".".join(str(p) for p in path + (key_node.value,)))
            seen[key_node.value] = key_node.start_mark.line + 1
            _duplicate_keys(value_node, path + (key_node.value,), file, depth + 1)


class Document:
    """One loaded compose file: its data (a mapping) and the line of each key path."""

    def __init__(self, path, data, lines):
        self.path = path
        self.data = data
        self.lines = lines


def read_text(path, what="compose file"):
    """The UTF-8 text of ``path``, refusing missing files, directories, oversized and binary files."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _err("the %s does not exist" % what, "check the path (relative paths are relative to the playbook's "
                   "working directory for module parameters, to the first compose file's directory inside compose files)",
                   path) from None
    except IsADirectoryError:
        raise _err("the %s is a directory" % what, "give the path of a file", path) from None
    except OSError as exc:
        raise _err("cannot read the %s: %s" % (what, exc.strerror), "check the path and its permissions", path) from None
    if len(raw) > MAX_BYTES:
        raise _err("the %s is larger than %d bytes" % (what, MAX_BYTES), "split it or check that it is the right file", path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\x00" in raw:
        line = raw[:raw.index(b"\x00")].count(b"\n") + 1
        raise _err("the %s holds NUL bytes: it is binary, not YAML text" % what, "give a UTF-8 text file", path, line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise _err("the %s is not UTF-8 text (binary data?)" % what, "give a UTF-8 text file", path, line) from None
    match = _CONTROL.search(text)
    if match:
        line = text.count("\n", 0, match.start()) + 1
        raise _err("the %s holds the control character %r: it is binary, not YAML text" % (what, match.group()),
                   "give a UTF-8 text file", path, line)
    return text


def load_yaml(path):
    """A :class:`Document` from the compose file at ``path``."""
    text = read_text(path)
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise _err("the compose file is empty", "give a file with a top-level 'services' mapping", path)
    loader = BoundedLoader(text)
    try:
        node, data = loader.load()
    except _Bounded as exc:
        line = exc.mark.line + 1 if exc.mark is not None else None
        raise _err("refused: %s" % exc, exc.fix, path, line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(filter(None, [exc.context, exc.problem]))
        raise _err("invalid YAML: %s%s" % (problem, " (column %d)" % (mark.column + 1) if mark is not None else ""),
                   "correct the YAML syntax at that line", path, line) from None
    except yaml.YAMLError as exc:
        raise _err("invalid YAML: %s" % exc, "correct the YAML syntax", path) from None
    except RecursionError:
        raise _err("refused: nested too deeply", "flatten the file", path) from None
    finally:
        loader.dispose()
    if node is None or data is None:
        raise _err("the compose file is empty", "give a file with a top-level 'services' mapping", path)
    if not isinstance(data, dict):
        raise _err("the top level is a %s, not a mapping" % type(data).__name__,
                   "the file must be a mapping with a 'services' key", path, node.start_mark.line + 1)
    _duplicate_keys(node, (), path)
    lines = {}
    _record_lines(node, (), lines)
    return Document(path, data, lines)


# ---------------------------------------------------------------------------------------------------------------
# Environment files and interpolation
# ---------------------------------------------------------------------------------------------------------------

def read_env_file(path, what="env file"):
    """``KEY=VALUE`` lines (``#`` comments, blank lines, ``export`` prefix, single/double quotes) as a dict."""
    text = read_text(path, what)
    result = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _VAR_NAME.fullmatch(key):
            raise _err("line is not KEY=VALUE: %r" % raw[:80], "write one KEY=VALUE per line (KEY: letters, digits, _)",
                       path, number)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        result[key] = value
    return result


def _interpolate_string(text, env, locate):
    """Compose interpolation of one string: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``,
    ``${VAR:?msg}``, ``${VAR?msg}``, ``${VAR:+r}``, ``${VAR+r}``; defaults may nest (``${A:-${B}}``)."""
    if "$" not in text:
        return text
    out = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                raise locate("invalid interpolation: '${' without its '}' in %r" % text, "close the brace, or write $$ for a literal $")
            out.append(_substitute(text[i + 2:end], env, locate, text))
            i = end + 1
            continue
        match = _VAR_NAME.match(text, i + 1)
        if match:
            out.append(env.get(match.group(), ""))
            i = match.end()
            continue
        out.append("$")
        i += 1
    return "".join(out)


def _closing_brace(text, start):
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _substitute(expr, env, locate, whole):
    match = _VAR_NAME.match(expr)
    if not match:
        raise locate("invalid interpolation format for %r: %r is not a variable name" % (whole, expr),
                     "use ${NAME}, ${NAME:-default} or ${NAME:?message}; write $$ for a literal $")
    name = match.group()
    rest = expr[match.end():]
    value = env.get(name)
    if not rest:
        return value if value is not None else ""
    for op in (":-", "-", ":?", "?", ":+", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            unset = value is None
            empty = unset or value == ""
            missing = empty if op.startswith(":") else unset
            if op.endswith("-"):
                return _interpolate_string(arg, env, locate) if missing else value
            if op.endswith("?"):
                if missing:
                    message = _interpolate_string(arg, env, locate) or "required"
                    raise locate("required variable %s is %s: %s" % (name, "unset" if unset else "empty", message),
                                 "set %s in the module's env or in one of its env_files" % name, variable=name)
                return value
            return _interpolate_string(arg, env, locate) if not missing else ""
    raise locate("invalid interpolation format for %r: unexpected %r after %s" % (whole, rest, name),
                 "use ${NAME}, ${NAME:-default} or ${NAME:?message}; write $$ for a literal $")


def interpolate(doc, env):
    """Interpolate every string value of the services, networks, volumes, secrets and configs sections in place
    (keys and top-level ``x-`` extensions are left alone, as the Docker CLI does)."""

    def walk(value, path):
        if isinstance(value, str):
            return _interpolate_string(value, env, _locator(doc, path))
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        return value

    for section in INTERPOLATED_SECTIONS:
        if section in doc.data:
            doc.data[section] = walk(doc.data[section], (section,))


def _locator(doc, path):
    def locate(msg, fix, **extra):
        err = _located(doc, path, msg, fix)
        err.details.update(extra)
        return err

    return locate


def _located(doc, path, msg, fix):
    line = None
    probe = tuple(path)
    while probe:
        if probe in doc.lines:
            line = doc.lines[probe]
            break
        probe = probe[:-1]
    service = path[1] if len(path) > 1 and path[0] == "services" else None
    key_path = path[2:] if service else path
    key = ".".join(str(p) for p in key_path) if key_path else None
    return _err(msg, fix, doc.path, line, service, key)


# ---------------------------------------------------------------------------------------------------------------
# Normalisation (short syntax -> long syntax), per file, before merging
# ---------------------------------------------------------------------------------------------------------------

def parse_duration(value, locate, key):
    """Seconds from a Go duration (``1m30s``, ``500ms``) or a number of seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise locate("%s: %r is not a duration" % (key, value), "write a duration such as 10s or 1m30s")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise locate("%s: %r is not a duration" % (key, value), "write a duration such as 10s, 1m30s or 500ms")
    return total


def _port_int(value, locate, what):
    if isinstance(value, bool):
        raise locate("%s %r is not a port number" % (what, value), "use a number from 1 to 65535")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise locate("%s %r is not a port number" % (what, value), "use a number from 1 to 65535") from None
    if not 1 <= number <= 65535:
        raise locate("%s %d is out of range" % (what, number), "use a port from 1 to 65535")
    return number


def _port_range(text, locate, what):
    text = str(text).strip()
    if "-" in text:
        low, _sep, high = text.partition("-")
        low, high = _port_int(low, locate, what), _port_int(high, locate, what)
        if high < low:
            raise locate("%s range %s ends before it starts" % (what, text), "write LOW-HIGH")
        return list(range(low, high + 1))
    return [_port_int(text, locate, what)]


def normalise_ports(ports, locate):
    """Long-syntax port dicts ``{target, published, protocol, mode, host_ip}`` (ranges expanded)."""
    if not isinstance(ports, list):
        raise locate("ports must be a list", "write ports as a list, e.g. ['8080:80']")
    result = []
    for index, entry in enumerate(ports):
        loc = _sub(locate, index)
        if isinstance(entry, dict):
            if "target" not in entry:
                raise loc("a long-syntax port has no 'target'", "add target: <container port>")
            targets = _port_range(entry["target"], loc, "target port")
            published = entry.get("published")
            pubs = _port_range(published, loc, "published port") if published not in (None, "") else [None] * len(targets)
            if len(pubs) == 1 and len(targets) > 1:
                pubs = pubs * len(targets)
            protocol = str(entry.get("protocol", "tcp")).lower()
            mode = str(entry.get("mode", "ingress")).lower()
            host_ip = entry.get("host_ip")
        elif isinstance(entry, (str, int)) and not isinstance(entry, bool):
            text = str(entry).strip()
            spec, _sep, protocol = text.partition("/")
            protocol = (protocol or "tcp").lower()
            parts = spec.rsplit(":", 2) if not spec.startswith("[") else _ipv6_split(spec)
            host_ip = None
            if len(parts) == 3:
                host_ip, published, target = parts
            elif len(parts) == 2:
                published, target = parts
            else:
                published, target = None, parts[0]
            targets = _port_range(target, loc, "target port")
            pubs = _port_range(published, loc, "published port") if published not in (None, "") else [None] * len(targets)
            mode = "ingress"
        else:
            raise loc("a port must be a string, a number or a mapping, not %s" % type(entry).__name__,
                      "write '8080:80' or {target: 80, published: 8080}")
        if len(pubs) != len(targets):
            raise loc("the published range and the target range differ in length", "give ranges of equal length")
        if protocol not in ("tcp", "udp", "sctp"):
            raise loc("protocol %r is not tcp, udp or sctp" % protocol, "use tcp, udp or sctp")
        if mode not in ("ingress", "host"):
            raise loc("port mode %r is not ingress or host" % mode, "use mode: ingress or mode: host")
        for target, published in zip(targets, pubs):
            port = {"target": target, "published": published, "protocol": protocol, "mode": mode}
            if host_ip:
                port["host_ip"] = str(host_ip)
            if port not in result:
                result.append(port)
        if len(result) > MAX_PORTS_PER_SERVICE:
            raise loc("more than %d ports" % MAX_PORTS_PER_SERVICE, "publish fewer ports")
    return result


def _ipv6_split(spec):
    """``[::1]:8080:80`` -> ['::1', '8080', '80']."""
    host, _sep, rest = spec[1:].partition("]")
    return [host] + rest.lstrip(":").split(":", 1)


def _sub(locate, *keys):
    """A locator for a sub-key of what ``locate`` locates."""

    def inner(msg, fix, _keys=(), **extra):
        return locate(msg, fix, _keys=keys + tuple(_keys), **extra)

    return inner


def _kv_list_to_map(value, locate, what):
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): (None if v is None else _scalar_text(v)) for k, v in value.items()}
    if isinstance(value, list):
        result = {}
        for item in value:
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise locate("%s entries must be strings like KEY=VALUE" % what, "write KEY=VALUE")
            key, sep, val = str(item).partition("=")
            result[key] = val if sep else None
        return result
    raise locate("%s must be a mapping or a list of KEY=VALUE" % what, "write a mapping KEY: VALUE")


def _normalise_service(name, svc, locate):
    """Short syntaxes to long ones, in place, so that files merge key by key."""
    if "environment" in svc:
        svc["environment"] = _kv_list_to_map(svc["environment"], _sub(locate, "environment"), "environment")
    if "labels" in svc:
        svc["labels"] = _kv_list_to_map(svc["labels"], _sub(locate, "labels"), "labels")
    deploy = svc.get("deploy")
    if deploy is not None and not isinstance(deploy, dict):
        raise locate("deploy must be a mapping", "write deploy: {replicas: 1, ...}", _keys=("deploy",))
    if deploy and "labels" in deploy:
        deploy["labels"] = _kv_list_to_map(deploy["labels"], _sub(locate, "deploy", "labels"), "deploy.labels")
    if "env_file" in svc:
        files = svc["env_file"]
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list):
            raise locate("env_file must be a path or a list of paths", "write env_file: [app.env]", _keys=("env_file",))
        svc["env_file"] = [f if isinstance(f, dict) else {"path": str(f), "required": True} for f in files]
    if "ports" in svc:
        svc["ports"] = normalise_ports(svc["ports"], _sub(locate, "ports"))
    for section in ("secrets", "configs"):
        if section in svc:
            items = svc[section]
            if not isinstance(items, list):
                raise locate("%s must be a list" % section, "write %s: [name]" % section, _keys=(section,))
            normal = []
            for index, item in enumerate(items):
                if isinstance(item, str):
                    item = {"source": item}
                if not isinstance(item, dict) or not item.get("source"):
                    raise locate("each %s entry needs a source" % section, "write - source: <name>", _keys=(section, index))
                normal.append(dict(item))
            svc[section] = normal
    if "volumes" in svc:
        if not isinstance(svc["volumes"], list):
            raise locate("volumes must be a list", "write volumes: ['data:/data']", _keys=("volumes",))
        svc["volumes"] = [_normalise_volume(v, _sub(locate, "volumes", i)) for i, v in enumerate(svc["volumes"])]
    if "networks" in svc and isinstance(svc["networks"], list):
        svc["networks"] = {str(n): None for n in svc["networks"]}
    hc = svc.get("healthcheck")
    if isinstance(hc, dict) and isinstance(hc.get("test"), str):
        hc["test"] = ["CMD-SHELL", hc["test"]]


def _normalise_volume(entry, locate):
    if isinstance(entry, dict):
        if "target" not in entry:
            raise locate("a long-syntax volume has no 'target'", "add target: <path in the container>")
        vol = dict(entry)
        vol.setdefault("type", "volume")
        return vol
    if not isinstance(entry, str):
        raise locate("a volume must be a string or a mapping", "write 'name:/path' or {type: volume, source: name, target: /path}")
    parts = entry.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) > 2 else ""
    kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    vol = {"type": kind, "source": source, "target": target}
    if "ro" in mode.split(","):
        vol["read_only"] = True
    return vol


# ---------------------------------------------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------------------------------------------

_KEYED_LISTS = {"secrets": "source", "configs": "source", "volumes": "target"}
_REPLACED = {("command",), ("entrypoint",), ("healthcheck", "test")}


def _merge_value(base, override, path):
    if path in _REPLACED:
        return override
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge_value(base[key], value, path + (key,)) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if len(path) == 1 and path[0] in _KEYED_LISTS:
            field = _KEYED_LISTS[path[0]]
            merged = {item.get(field): item for item in base}
            merged.update({item.get(field): item for item in override})
            return sorted(merged.values(), key=lambda item: str(item.get(field)))
        if path == ("ports",):
            merged = list(base)
            merged.extend(p for p in override if p not in merged)
            return sorted(merged, key=lambda p: (p["published"] or 0, p["target"], p["protocol"]))
        return base + override
    return override


class Project:
    """The merged, interpolated, validated compose project."""

    def __init__(self, files, data, documents, workdir):
        self.files = files
        self.data = data
        self.documents = documents
        self.workdir = workdir
        self.services = data.get("services", {})
        self.warnings = []  # dicts: {service, key, message}

    def locate(self, path):
        """(file, line) where ``path`` was last given (the later file wins, as in the merge)."""
        path = tuple(path)
        fallback = None
        for doc in reversed(self.documents):
            probe = path
            while probe:
                if probe in doc.lines:
                    if len(probe) >= min(2, len(path)):
                        return doc.path, doc.lines[probe]
                    fallback = fallback or (doc.path, doc.lines[probe])
                    break
                probe = probe[:-1]
        return fallback or ((self.documents[-1].path if self.documents else None), None)

    def error(self, path, msg, fix, **extra):
        """An InputError located at ``path`` (a tuple of keys starting with 'services', name, ...)."""
        file, line = self.locate(path)
        service = path[1] if len(path) > 1 and path[0] == "services" else None
        key_path = path[2:] if service else path
        err = _err(msg, fix, file, line, service, ".".join(str(p) for p in key_path) or None)
        err.details.update(extra)
        return err

    def warn(self, service, key, message):
        self.warnings.append({"service": service, "key": key, "message": message})


def load_project(src, env=None, env_files=None, services=None, gpus_per_node=None):
    """Load, interpolate, normalise, merge and validate the compose files ``src`` (in order)."""
    if not HAS_YAML:  # pragma: no cover
        raise InputError("PyYAML is required to read compose files: %s" % YAML_IMPORT_ERROR)
    if isinstance(src, str):
        src = [src]
    if not src:
        raise InputError("src is empty. Fix: give at least one compose file", key="src", fix="give at least one compose file")
    variables = {}
    for path in env_files or []:
        variables.update(read_env_file(path, "env_files entry"))
    for key, value in (env or {}).items():
        variables[str(key)] = _scalar_text(value)
    documents = []
    for path in src:
        doc = load_yaml(path)
        interpolate(doc, variables)
        _normalise_document(doc)
        documents.append(doc)
    merged = {}
    for doc in documents:
        for key, value in doc.data.items():
            if key == "services" and isinstance(value, dict) and isinstance(merged.get("services"), dict):
                services_merged = dict(merged["services"])
                for name, svc in value.items():
                    services_merged[name] = _merge_value(services_merged[name], svc, ()) if name in services_merged else svc
                merged["services"] = services_merged
            elif key in ("volumes", "networks", "secrets", "configs") and isinstance(value, dict) and isinstance(merged.get(key), dict):
                section = dict(merged[key])
                section.update(value)
                merged[key] = section
            else:
                merged[key] = value
    workdir = os.path.dirname(os.path.abspath(src[0]))
    project = Project(list(src), merged, documents, workdir)
    project.variables = variables
    validate(project, gpus_per_node)
    if services:
        unknown = sorted(set(services) - set(project.services))
        if unknown:
            raise InputError(
                "services: %s not in the compose files (they define: %s). Fix: name services the files define"
                % (", ".join(unknown), ", ".join(sorted(project.services))),
                key="services", fix="name services the files define", unknown=unknown)
        project.services = {name: project.services[name] for name in sorted(services)}
    return project


def _normalise_document(doc):
    data = doc.data
    services = data.get("services")
    if "services" not in data:
        raise _err("no 'services' key", "add a top-level 'services' mapping", doc.path, 1, key="services")
    if not isinstance(services, dict):
        raise _located(doc, ("services",), "'services' is a %s, not a mapping" % type(services).__name__,
                       "write services as a mapping of service name to settings")
    for name, svc in services.items():
        if svc is None:
            svc = services[name] = {}
        if not isinstance(svc, dict):
            raise _located(doc, ("services", name), "the service is a %s, not a mapping" % type(svc).__name__,
                           "write the service's settings as a mapping")

        def locate(msg, fix, _keys=(), _name=name, **extra):
            err = _located(doc, ("services", _name) + tuple(_keys), msg, fix)
            err.details.update(extra)
            return err

        _normalise_service(name, svc, locate)
    for section in ("volumes", "networks", "secrets", "configs"):
        value = data.get(section)
        if value is None and section in data:
            data[section] = {}
        elif value is not None and not isinstance(value, dict):
            raise _located(doc, (section,), "'%s' must be a mapping" % section, "write %s as a mapping of name to settings" % section)
        elif value:
            for key in list(value):
                if value[key] is None:
                    value[key] = {}


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------

def k8s_name(name):
    """Kompose's and ours: a compose name as a Kubernetes object name (lower case, '_' -> '-')."""
    return str(name).lower().replace("_", "-")


def _suggest(name):
    cleaned = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")[:63].strip("-")
    return cleaned or "my-service"


def validate(project, gpus_per_node=None):
    """Check everything the conversion relies on; the first problem raises."""
    services = project.services
    if not services:
        raise project.error(("services",), "no services are defined", "define at least one service")
    published = {}
    for name in services:
        svc = services[name]
        base = ("services", name)
        if not isinstance(name, str) or not DNS1123_LABEL.match(name) or len(name) > 63:
            hint = ""
            if "/" in str(name) or ".." in str(name):
                hint = " ('/' and '..' would put files outside dest)"
            raise project.error(base, "the service name %r is not a valid Kubernetes name%s: lower-case letters, digits "
                                "and '-', starting and ending with a letter or digit, at most 63 characters" % (name, hint),
                                "rename the service, e.g. to %r" % _suggest(name))
        image = svc.get("image")
        if not image or not isinstance(image, str) or not image.strip():
            fix = "add image: <registry/name:tag>"
            if "build" in svc:
                fix = "build and push the image, then set image: to it (a cluster cannot build)"
            raise project.error(base + ("image",), "no image", fix)
        for index, port in enumerate(svc.get("ports", [])):
            if port["published"] is None:
                continue
            key = (port["published"], port["protocol"])
            if key in published and published[key][0] != name:
                other, other_index = published[key]
                ofile, oline = project.locate(("services", other, "ports", other_index))
                raise project.error(base + ("ports", index),
                                    "port %d/%s is also published by service '%s' (%s:%s)" % (key[0], key[1], other, ofile, oline),
                                    "publish a different port on one of the two services")
            published[key] = (name, index)
        deploy = svc.get("deploy") or {}
        _validate_deploy(project, name, deploy, gpus_per_node)
        hc = svc.get("healthcheck")
        if hc is not None:
            if not isinstance(hc, dict):
                raise project.error(base + ("healthcheck",), "healthcheck must be a mapping", "write healthcheck: {test: [...], interval: 10s}")
            for key in ("interval", "timeout", "start_period", "start_interval"):
                if key in hc:
                    parse_duration(hc[key], lambda m, f, k=key: project.error(base + ("healthcheck", k), m, f), "healthcheck." + key)
            if "retries" in hc and (isinstance(hc["retries"], bool) or not isinstance(hc["retries"], int) or hc["retries"] < 0):
                raise project.error(base + ("healthcheck", "retries"), "retries %r is not a whole number >= 0" % (hc["retries"],),
                                    "write retries: 3")
            test = hc.get("test")
            if test is not None and (not isinstance(test, list) or not test or not all(isinstance(t, (str, int, float)) for t in test)):
                raise project.error(base + ("healthcheck", "test"), "test must be a list like [CMD, ...] or a string",
                                    "write test: [\"CMD\", \"curl\", \"-f\", \"http://localhost/\"]")
            if isinstance(test, list) and test and str(test[0]) not in ("CMD", "CMD-SHELL", "NONE"):
                raise project.error(base + ("healthcheck", "test"), "test must start with CMD, CMD-SHELL or NONE, not %r" % test[0],
                                    "write [\"CMD\", ...] or [\"CMD-SHELL\", \"...\"]")
        for ref in ("secrets", "configs"):
            defined = project.data.get(ref) or {}
            for index, item in enumerate(svc.get(ref, [])):
                if item["source"] not in defined:
                    raise project.error(base + (ref, index), "%s '%s' is not defined at the top level" % (ref[:-1], item["source"]),
                                        "add it under the top-level '%s' key" % ref)
        for index, vol in enumerate(svc.get("volumes", [])):
            if vol.get("type") == "volume" and vol.get("source") and vol["source"] not in (project.data.get("volumes") or {}):
                raise project.error(base + ("volumes", index), "volume '%s' is not defined at the top level" % vol["source"],
                                    "add it under the top-level 'volumes' key")
        env = svc.get("environment") or {}
        for key in env:
            if not key or "=" in key:
                raise project.error(base + ("environment",), "invalid environment variable name %r" % key, "use NAME=value")
    for section in ("secrets", "configs", "volumes"):
        seen = {}
        for key, spec in (project.data.get(section) or {}).items():
            if not isinstance(spec, dict):
                raise project.error((section, key), "'%s.%s' must be a mapping" % (section, key), "write %s: {file: ./path}" % key)
            name = k8s_name(spec.get("name") or key) if spec.get("external") else k8s_name(key)
            if not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
                raise project.error((section, key), "%s name %r does not make a valid Kubernetes name (%r)" % (section[:-1], key, name),
                                    "rename it with lower-case letters, digits, '-' and '.'")
            if name in seen:
                raise project.error((section, key), "%s '%s' and '%s' both become the Kubernetes name %r" % (section, seen[name], key, name),
                                    "rename one of them")
            seen[name] = key


def gpu_request(project, name, deploy, gpus_per_node=None):
    """(count, notes) for a service's GPU reservation: devices with driver nvidia or capability gpu, and Swarm
    generic_resources of kind NVIDIA-GPU / GPU. notes are (key, message) pairs for what cannot be carried over."""
    base = ("services", name, "deploy", "resources", "reservations")
    reservations = ((deploy.get("resources") or {}).get("reservations")) or {}
    total = 0
    notes = []
    for index, dev in enumerate(reservations.get("devices") or []):
        path = base + ("devices", index)
        if not isinstance(dev, dict):
            raise project.error(path, "a device reservation must be a mapping", "write {driver: nvidia, count: 1, capabilities: [gpu]}")
        caps = [str(c) for c in dev.get("capabilities") or []]
        if dev.get("driver") not in (None, "nvidia") or (dev.get("driver") is None and "gpu" not in caps):
            notes.append(("deploy.resources.reservations.devices", "device reservation %r is not an NVIDIA GPU: not carried over" % (dev,)))
            continue
        count = dev.get("count")
        ids = dev.get("device_ids")
        if ids is not None:
            if count is not None:
                raise project.error(path, "count and device_ids are both set", "keep one of them")
            if not isinstance(ids, list):
                raise project.error(path + ("device_ids",), "device_ids must be a list", "write device_ids: ['0']")
            total += len(ids)
            notes.append(("deploy.resources.reservations.devices.device_ids",
                          "device_ids %s became a count of %d: Kubernetes cannot pin GPU ids" % (ids, len(ids))))
            continue
        if count is None or (isinstance(count, str) and count.strip().lower() == "all"):
            if not gpus_per_node:
                raise project.error(path + ("count",), "count: all (or no count) asks for every GPU of a node, which has "
                                    "no Kubernetes equivalent", "set the module's gpus_per_node to the GPUs of each GPU node "
                                    "(e.g. 8 for an 8x H100 host), or give a number")
            total += int(gpus_per_node)
            notes.append(("deploy.resources.reservations.devices.count",
                          "count: all became %d GPUs (gpus_per_node)" % int(gpus_per_node)))
            continue
        total += _gpu_number(project, path + ("count",), count)
        if "options" in dev:
            notes.append(("deploy.resources.reservations.devices.options", "device options are not carried over"))
    for index, res in enumerate(reservations.get("generic_resources") or []):
        path = base + ("generic_resources", index)
        spec = (res or {}).get("discrete_resource_spec") if isinstance(res, dict) else None
        if not isinstance(spec, dict):
            raise project.error(path, "generic_resources entries need a discrete_resource_spec",
                                "write {discrete_resource_spec: {kind: NVIDIA-GPU, value: 1}}")
        kind = str(spec.get("kind", ""))
        if kind.lower() not in GPU_KINDS:
            notes.append(("deploy.resources.reservations.generic_resources",
                          "generic resource kind %r is not a GPU kind: not carried over" % kind))
            continue
        total += _gpu_number(project, path + ("discrete_resource_spec", "value"), spec.get("value"))
    return total, notes


def _gpu_number(project, path, value):
    if isinstance(value, bool) or value is None:
        raise project.error(path, "GPU count %r is not a number" % (value,), "give a whole number of GPUs, e.g. 1")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise project.error(path, "GPU count %r is not a whole number" % (value,), "give a whole number of GPUs, e.g. 1")
    if value < 0:
        raise project.error(path, "GPU count %d is negative" % value, "give 0 or more GPUs")
    return value


def _validate_deploy(project, name, deploy, gpus_per_node):
    base = ("services", name, "deploy")
    replicas = deploy.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0):
        raise project.error(base + ("replicas",), "replicas %r is not a whole number >= 0" % (replicas,), "write replicas: 1")
    mode = deploy.get("mode", "replicated")
    if mode not in ("replicated", "global"):
        raise project.error(base + ("mode",), "deploy.mode %r has no Deployment or DaemonSet equivalent" % (mode,),
                            "use mode: replicated or global (jobs are not converted)")
    gpu_request(project, name, deploy, gpus_per_node)
    resources = deploy.get("resources") or {}
    for kind in ("limits", "reservations"):
        for key in ("cpus",):
            value = (resources.get(kind) or {}).get(key)
            if value is not None:
                try:
                    if float(value) < 0:
                        raise ValueError
                except (TypeError, ValueError):
                    raise project.error(base + ("resources", kind, key), "cpus %r is not a number >= 0" % (value,),
                                        "write cpus: '0.5'") from None
    for section in ("update_config", "rollback_config"):
        cfg = deploy.get(section)
        if cfg is None:
            continue
        if not isinstance(cfg, dict):
            raise project.error(base + (section,), "%s must be a mapping" % section, "write %s: {parallelism: 1}" % section)
        par = cfg.get("parallelism")
        if par is not None and (isinstance(par, bool) or not isinstance(par, int) or par < 0):
            raise project.error(base + (section, "parallelism"), "parallelism %r is not a whole number >= 0" % (par,),
                                "write parallelism: 1")
        order = cfg.get("order")
        if order is not None and order not in ("start-first", "stop-first"):
            raise project.error(base + (section, "order"), "order %r is not start-first or stop-first" % (order,),
                                "write order: start-first or stop-first")
        for key in ("delay", "monitor"):
            if key in cfg:
                parse_duration(cfg[key], lambda m, f, k=key: project.error(base + (section, k), m, f), section + "." + key)
    placement = deploy.get("placement") or {}
    for index, constraint in enumerate(placement.get("constraints") or []):
        parse_constraint(constraint, lambda m, f, i=index: project.error(base + ("placement", "constraints", i), m, f))


_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*?)\s*$")


def parse_constraint(text, locate):
    """(attribute, operator, value) of a Swarm placement constraint such as ``node.labels.gpu == true``."""
    match = _CONSTRAINT.match(str(text))
    if not match or not match.group(3):
        raise locate("placement constraint %r is not 'attribute == value' or 'attribute != value'" % (text,),
                     "write e.g. node.labels.gpu == true")
    return match.group(1), match.group(2), match.group(3)
