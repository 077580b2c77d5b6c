# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of Kubernetes objects against the API's OpenAPI v3 schema, compiled once into Python closures.

The Kubernetes API publishes one OpenAPI v3 document per group-version (``api/v1``, ``apis/apps/v1``, ...), each
self-contained (it carries every schema it references). Two sources give the same documents:

* a directory as ``k8s.io/kubernetes`` ships it in ``api/openapi-spec/v3/`` (``api__v1_openapi.json``,
  ``apis__apps__v1_openapi.json``, ...), for example from the Go module cache that ``make setup`` fills;
* the API server itself: ``GET /openapi/v3`` lists the documents with a content hash each, and
  ``GET /openapi/v3/apis/apps/v1?hash=...`` serves one (:func:`server_documents`; the HTTP goes through
  ``_k8s_client``). The server's documents also carry ``enum`` lists (the committed files in
  ``k8s.io/kubernetes`` do not), and the schemas of the cluster's CustomResourceDefinitions.

Only the documents of the apiVersions in use are read. Each is reduced to a compact table (:func:`compact`: the
keywords that validation needs, descriptions dropped, ``allOf: [$ref]`` wrappers unwrapped, the kind -> schema
and kind -> resource path maps), which is cached on disk as JSON under the document's hash
(``<cache_dir>/<sha256>.v1.json``; never pickled, so a cache directory cannot inject code). A
:class:`Validator` compiles the schemas that the objects reach into closures, lazily and once per process, and
checks values against them without building any path string until an error is found.

Checked: ``type`` (string, integer with the int32/int64 range of its ``format``, number, boolean, array, object),
``properties`` (unknown fields are errors where the schema lists properties and allows no others, as the API
server's strict field validation does), ``required``, ``additionalProperties``, ``items``, ``enum``, ``oneOf`` /
``anyOf`` / ``allOf``, ``pattern``, ``minimum`` / ``maximum``, ``minLength`` / ``maxLength``, ``minItems`` /
``maxItems``, ``format: byte`` (base64), int-or-string and resource quantities (their grammar), and the list
semantics ``x-kubernetes-list-type: map`` (unique keys, with the keys' defaults) and ``set`` (unique items), which
server-side apply enforces. ``x-kubernetes-preserve-unknown-fields`` lets unknown fields through. ``null``
counts as an absent field (as the API server decodes it), but not as a present required one. Not checked: CEL
rules (``x-kubernetes-validations``) and the API server's own validation code (names, label syntax,
cross-field rules): the server-side dry run covers those.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import tempfile

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError, PlatformError

FORMAT = 1  # of the compact tables; part of the cache file names
QUANTITY_SCHEMA = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_REF_PREFIX = "#/components/schemas/"
_SCALAR_KEYS = ("type", "format", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                "minLength", "maxLength", "minItems", "maxItems", "nullable", "x-kubernetes-list-type",
                "x-kubernetes-list-map-keys", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
                "x-kubernetes-embedded-resource")
_RESOURCE_PATH = re.compile(r"^/apis?/.+/[a-z0-9.-]+/\{name\}$")
_INT_RANGE = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}
_QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?\d+)?$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object",
               type(None): "null"}


# ---------------------------------------------------------------------------------------------------------------
# Documents and their compact tables
# ---------------------------------------------------------------------------------------------------------------

def group_version_path(api_version):
    """``v1`` -> ``api/v1``, ``apps/v1`` -> ``apis/apps/v1``: the document's path under /openapi/v3."""
    if not isinstance(api_version, str) or not api_version or api_version.count("/") > 1 or " " in api_version:
        raise InputError("apiVersion %r is not 'v1' or 'group/version'" % (api_version,), key="apiVersion")
    return "api/" + api_version if "/" not in api_version else "apis/" + api_version


def document_file_name(gv_path):
    """``apis/apps/v1`` -> ``apis__apps__v1_openapi.json``, the name in k8s.io/kubernetes' api/openapi-spec/v3."""
    return gv_path.replace("/", "__") + "_openapi.json"


def _ref_name(ref):
    return ref[len(_REF_PREFIX):] if ref.startswith(_REF_PREFIX) else ref


def _compact_schema(schema, name=None):
    """The part of one schema that validation reads (recursively); {} means 'anything'."""
    if not isinstance(schema, dict):
        return {}
    if "$ref" in schema:
        return {"$ref": _ref_name(schema["$ref"])}
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) and set(all_of[0]) == {"$ref"}:
        out = {"$ref": _ref_name(all_of[0]["$ref"])}
        if schema.get("nullable"):
            out["nullable"] = True
        return out
    out = {key: schema[key] for key in _SCALAR_KEYS if key in schema}
    if name == QUANTITY_SCHEMA:
        out["format"] = "quantity"
    if isinstance(schema.get("enum"), list):
        out["enum"] = schema["enum"]
    if isinstance(schema.get("required"), list):
        out["required"] = sorted(set(schema["required"]))
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {key: _compact_schema(value) for key, value in sorted(schema["properties"].items())}
    if "items" in schema:
        out["items"] = _compact_schema(schema["items"])
    additional = schema.get("additionalProperties")
    if isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif isinstance(additional, dict):
        out["additionalProperties"] = _compact_schema(additional)
    for key in ("allOf", "oneOf", "anyOf"):
        if isinstance(schema.get(key), list):
            out[key] = [_compact_schema(s) for s in schema[key]]
    default = schema.get("default")
    if isinstance(default, (str, int, float, bool)):
        out["default"] = default  # read only for the keys of list-type maps (a port's protocol defaults to TCP)
    return out


def compact(document):
    """A compact table from one OpenAPI v3 document: {"format", "schemas", "kinds", "resources"}.

    ``kinds`` maps ``<apiVersion>:<Kind>`` to the schema name, ``resources`` to the object's URL template
    (``/apis/apps/v1/namespaces/{namespace}/deployments/{name}``), taken from the document's patch operations.
    """
    if not isinstance(document, dict) or not isinstance((document.get("components") or {}).get("schemas"), dict):
        raise PlatformError("not an OpenAPI v3 document (no components.schemas)")
    schemas = document["components"]["schemas"]
    table = {"format": FORMAT, "schemas": {}, "kinds": {}, "resources": {}}
    for name, schema in sorted(schemas.items()):
        table["schemas"][name] = _compact_schema(schema, name)
        for gvk in (schema.get("x-kubernetes-group-version-kind") or []) if isinstance(schema, dict) else []:
            group, version, kind = gvk.get("group") or "", gvk.get("version") or "", gvk.get("kind") or ""
            api_version = "%s/%s" % (group, version) if group else version
            table["kinds"].setdefault("%s:%s" % (api_version, kind), name)
    for path, item in sorted((document.get("paths") or {}).items()):
        operation = (item or {}).get("patch") or {}
        gvk = operation.get("x-kubernetes-group-version-kind")
        if operation.get("x-kubernetes-action") != "patch" or not gvk or not _RESOURCE_PATH.match(path):
            continue
        api_version = "%s/%s" % (gvk["group"], gvk["version"]) if gvk.get("group") else gvk.get("version")
        table["resources"].setdefault("%s:%s" % (api_version, gvk.get("kind")), path)
    return table


class SchemaCache:
    """Compact tables on disk, one JSON file per document hash; a cache that cannot be written is skipped."""

    def __init__(self, directory):
        self.directory = directory
        self.hits = 0
        self.misses = 0

    def _path(self, key):
        return os.path.join(self.directory, "%s.v%d.json" % (key, FORMAT)) if self.directory else None

    def get(self, key):
        path = self._path(key)
        if not path:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                table = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(table, dict) or table.get("format") != FORMAT or not isinstance(table.get("schemas"), dict):
            return None
        self.hits += 1
        return table

    def put(self, key, table):
        self.misses += 1
        path = self._path(key)
        if not path:
            return
        try:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".schema-", dir=self.directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(table, handle, separators=(",", ":"), sort_keys=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache costs time, not correctness


def _safe_key(text):
    return re.sub(r"[^A-Za-z0-9]", "", text)[:128] or hashlib.sha256(text.encode()).hexdigest()


def directory_tables(directory, gv_paths, cache):
    """{gv path: table} from a directory of OpenAPI v3 files as k8s.io/kubernetes ships them.

    A group-version without a file is left out (the validator reports the objects that need it)."""
    if not os.path.isdir(directory):
        raise InputError("validate.schema: %s is not a directory. Fix: give the api/openapi-spec/v3 directory of "
                         "k8s.io/kubernetes at the target version (make setup leaves one in $SOPHIA_CACHE/go/mod/"
                         "k8s.io/kubernetes@<version>/api/openapi-spec/v3), a cluster connection, or schema: none"
                         % directory, key="validate.schema", object=directory)
    tables = {}
    for gv_path in sorted(set(gv_paths)):
        path = os.path.join(directory, document_file_name(gv_path))
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InputError("cannot read the OpenAPI document %s: %s" % (path, exc.strerror), object=path) from None
        key = hashlib.sha256(data).hexdigest()
        table = cache.get(key)
        if table is None:
            try:
                table = compact(json.loads(data))
            except (ValueError, PlatformError) as exc:
                raise InputError("%s is not an OpenAPI v3 document: %s" % (path, exc), object=path) from None
            cache.put(key, table)
        tables[gv_path] = table
    return tables


def server_tables(client, gv_paths, cache):
    """{gv path: table} from the API server's /openapi/v3 (one request for the index, one per document that is
    not cached yet under the hash the index gives)."""
    index = client.get("/openapi/v3")
    listed = (index or {}).get("paths") or {}
    tables = {}
    for gv_path in sorted(set(gv_paths)):
        entry = listed.get(gv_path)
        if not entry or not entry.get("serverRelativeURL"):
            continue
        url = entry["serverRelativeURL"]
        path, _sep, query = url.partition("?")
        digest = dict(part.partition("=")[::2] for part in query.split("&") if part).get("hash")
        key = _safe_key(digest) if digest else None
        table = cache.get(key) if key else None
        if table is None:
            document = client.get(path, [tuple(part.partition("=")[::2]) for part in query.split("&") if part])
            try:
                table = compact(document)
            except PlatformError as exc:
                raise PlatformError("the API server's %s is not an OpenAPI v3 document: %s" % (path, exc), object=path) from None
            if key:
                cache.put(key, table)
        tables[gv_path] = table
    return tables


# ---------------------------------------------------------------------------------------------------------------
# Error paths and messages
# ---------------------------------------------------------------------------------------------------------------

def path_text(path):
    """The linked path (parent, key) as ``spec.template.spec.containers[0].ports[1]`` / ``metadata.labels["a/b"]``."""
    parts = []
    while path:
        path, key = path
        if isinstance(key, int):
            parts.append("[%d]" % key)
        elif _IDENT.match(key):
            parts.append("." + key)
        else:
            parts.append("[%s]" % json.dumps(key))
    text = "".join(reversed(parts))
    return text[1:] if text.startswith(".") else (text or "(object)")


def describe(value):
    """``string "80"``, ``integer 3``, ``array``: the JSON type and a short rendering of a value."""
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return name
    text = "NaN" if isinstance(value, float) and math.isnan(value) else json.dumps(value)
    return "%s %s" % (name, text if len(text) <= 40 else text[:37] + "...")


def _short(name):
    return name.rsplit(".", 1)[-1] if name else "this object"


# ---------------------------------------------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------------------------------------------

def _expect(type_name, fmt=None):
    return "expected %s%s" % (type_name, " (%s)" % fmt if fmt else "")


class _Compiler:
    """Compiles the schemas of one compact table into closures ``check(value, path, errors)``; ``None`` for a
    schema that accepts anything. Schemas are compiled on first use and once."""

    def __init__(self, table):
        self.schemas = table["schemas"]
        self.funcs = {}

    def named(self, name):
        """The checker of schema ``name`` (recursive schemas go through the dict at call time)."""
        if name in self.funcs:
            return self.funcs[name]
        funcs = self.funcs

        def forward(value, path, errors):  # stands in while the schema compiles (recursive schemas)
            funcs[name](value, path, errors)
        funcs[name] = forward
        schema = self.schemas.get(name)
        func = self.node(schema, name) if schema is not None else None
        funcs[name] = func or _accept
        return funcs[name]

    def resolve(self, schema):
        """The schema a $ref points at (one level), for reading properties' defaults."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 16:
            schema = self.schemas.get(schema["$ref"]) or {}
            seen += 1
        return schema or {}

    def node(self, schema, name=None):  # pylint: disable=too-many-return-statements
        if not schema:
            return None
        if "$ref" in schema:
            func = self.named(schema["$ref"])
            return None if func is _accept else func
        if schema.get("format") == "quantity":
            return _quantity
        if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
            return _int_or_string
        checks = []
        kind = schema.get("type")
        if kind == "object" or "properties" in schema or "additionalProperties" in schema:
            checks.append(self._object(schema, name))
        elif kind == "array":
            checks.append(self._array(schema))
        elif kind == "string":
            checks.append(self._string(schema))
        elif kind in ("integer", "number"):
            checks.append(self._number(schema, kind))
        elif kind == "boolean":
            checks.append(_boolean)
        if isinstance(schema.get("enum"), list) and kind != "string":
            checks.append(_enum(schema["enum"]))
        for key in ("allOf", "oneOf", "anyOf"):
            if schema.get(key):
                branches = [self.node(branch) for branch in schema[key]]
                if key == "allOf":
                    checks.extend(b for b in branches if b)
                elif all(branches):
                    checks.append(_one_of(branches, schema[key], key))
        checks = [c for c in checks if c]
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]

        def all_checks(value, path, errors):
            for check in checks:
                check(value, path, errors)
        return all_checks

    def _object(self, schema, name):
        properties = {key: self.node(sub) for key, sub in (schema.get("properties") or {}).items()}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        strict = bool(properties) and additional in (None, False) and not preserve
        extra = self.node(additional) if isinstance(additional, dict) else None
        required = tuple(schema.get("required") or ())
        known = sorted(properties)
        label = _short(name)

        def check_object(value, path, errors):
            if not isinstance(value, dict):
                errors.append((path, "%s, got %s" % (_expect("object"), describe(value))))
                return
            for key, item in value.items():
                if key in properties:
                    func = properties[key]
                elif strict:
                    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.8) if isinstance(key, str) else []
                    errors.append(((path, key if isinstance(key, str) else str(key)),
                                   "unknown field %s: %s has no such field%s" % (
                                       json.dumps(key) if isinstance(key, str) else repr(key), label,
                                       "; did you mean %s?" % json.dumps(hint[0]) if hint else "")))
                    continue
                else:
                    func = extra
                if func is not None and item is not None:
                    func(item, (path, key), errors)
            for key in required:
                if value.get(key) is None:
                    errors.append(((path, key), "required field missing (%s needs it)" % label))
        return check_object

    def _array(self, schema):
        items = self.node(schema.get("items"))
        list_type = schema.get("x-kubernetes-list-type")
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ()) if list_type == "map" else ()
        defaults = {}
        if keys:
            item_props = self.resolve(schema.get("items")).get("properties") or {}
            defaults = {key: self.resolve(item_props.get(key)).get("default") for key in keys}
        bounds = _bounds(schema, "minItems", "maxItems", "items")

        def check_array(value, path, errors):
            if not isinstance(value, list):
                errors.append((path, "%s, got %s" % (_expect("array"), describe(value))))
                return
            for index, item in enumerate(value):
                if item is None:
                    errors.append(((path, index), "null is not allowed as an item here"))
                elif items is not None:
                    items(item, (path, index), errors)
            if bounds:
                bounds(len(value), path, errors)
            if keys:
                _unique_keys(value, keys, defaults, path, errors)
            elif list_type == "set":
                _unique_items(value, path, errors)
        return check_array

    def _string(self, schema):
        fmt = schema.get("format")
        enum = tuple(schema["enum"]) if isinstance(schema.get("enum"), list) else None
        pattern = None
        if isinstance(schema.get("pattern"), str):
            try:
                pattern = re.compile(schema["pattern"])
            except re.error:
                pattern = None
        bounds = _bounds(schema, "minLength", "maxLength", "characters")
        base64 = fmt == "byte"
        if not (enum or pattern or bounds or base64):
            return _string
        choices = ", ".join(json.dumps(e) for e in enum) if enum else ""

        def check_string(value, path, errors):
            if not isinstance(value, str):
                errors.append((path, "%s, got %s" % (_expect("string", fmt), describe(value))))
                return
            if enum is not None and value not in enum:
                errors.append((path, "%s is not one of %s" % (json.dumps(value), choices)))
            if pattern is not None and not pattern.search(value):
                errors.append((path, "%s does not match the pattern %s" % (json.dumps(value), pattern.pattern)))
            if bounds:
                bounds(len(value), path, errors)
            if base64 and (len(value) % 4 or not _BASE64.match(value)):
                errors.append((path, "not base64 data (format byte): encode the value, or put it under stringData"))
        return check_string

    def _number(self, schema, kind):
        fmt = schema.get("format")
        low, high = _INT_RANGE.get(fmt, (None, None)) if kind == "integer" else (None, None)
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        ex_min, ex_max = schema.get("exclusiveMinimum") is True, schema.get("exclusiveMaximum") is True

        def check_number(value, path, errors):
            if isinstance(value, bool) or not isinstance(value, int if kind == "integer" else (int, float)):
                errors.append((path, "%s, got %s" % (_expect(kind, fmt), describe(value))))
                return
            if low is not None and not low <= value <= high:
                errors.append((path, "%s is out of the %s range" % (value, fmt)))
            if minimum is not None and (value < minimum or (ex_min and value == minimum)):
                errors.append((path, "%s is below the minimum %s%s" % (value, minimum, " (exclusive)" if ex_min else "")))
            if maximum is not None and (value > maximum or (ex_max and value == maximum)):
                errors.append((path, "%s is above the maximum %s%s" % (value, maximum, " (exclusive)" if ex_max else "")))
        return check_number


def _accept(value, path, errors):
    """A schema that accepts anything."""


def _string(value, path, errors):
    if not isinstance(value, str):
        errors.append((path, "%s, got %s" % (_expect("string"), describe(value))))


def _boolean(value, path, errors):
    if not isinstance(value, bool):
        errors.append((path, "%s, got %s" % (_expect("boolean"), describe(value))))


def _int_or_string(value, path, errors):
    if isinstance(value, str):
        if not value:
            errors.append((path, "int-or-string: an empty string is neither a number nor a name/percentage"))
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2 ** 31) <= value <= 2 ** 31 - 1:
            errors.append((path, "int-or-string: %s is out of the int32 range" % value))
    else:
        errors.append((path, "expected an integer or a string (int-or-string), got %s" % describe(value)))


def _quantity(value, path, errors):
    if isinstance(value, str):
        if not _QUANTITY.match(value):
            errors.append((path, "%s is not a Kubernetes quantity (for example 500m, 2, 1.5Gi, 512Mi, 1e3)"
                           % json.dumps(value)))
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append((path, "expected a quantity (string or number), got %s" % describe(value)))


def _enum(values):
    choices = ", ".join(json.dumps(v) for v in values)

    def check_enum(value, path, errors):
        if value not in values:
            errors.append((path, "%s is not one of %s" % (json.dumps(value), choices)))
    return check_enum


def _one_of(branches, schemas, keyword):
    types = ", ".join(s.get("type") or "a schema" for s in schemas)

    def check_one_of(value, path, errors):
        for branch in branches:
            trial = []
            branch(value, path, trial)
            if not trial:
                return
        errors.append((path, "%s matches none of %s (%s)" % (describe(value), keyword, types)))
    return check_one_of


def _bounds(schema, low_key, high_key, unit):
    low, high = schema.get(low_key), schema.get(high_key)
    if low is None and high is None:
        return None

    def check_bounds(size, path, errors):
        if low is not None and size < low:
            errors.append((path, "has %d %s, at least %d needed" % (size, unit, low)))
        if high is not None and size > high:
            errors.append((path, "has %d %s, at most %d allowed" % (size, unit, high)))
    return check_bounds


def _unique_keys(items, keys, defaults, path, errors):
    seen = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        key = tuple(item.get(k, defaults.get(k)) for k in keys)
        try:
            first = seen.setdefault(key, index)
        except TypeError:
            continue  # an unhashable key value has its own type error
        if first != index:
            shown = ", ".join("%s=%s" % (k, json.dumps(v)) for k, v in zip(keys, key))
            errors.append(((path, index), "duplicate entry (%s), also at [%d]: this list is a map keyed by %s, and "
                           "server-side apply refuses duplicate keys" % (shown, first, ", ".join(keys))))


def _unique_items(items, path, errors):
    seen = {}
    for index, item in enumerate(items):
        try:
            first = seen.setdefault(item, index)
        except TypeError:
            continue
        if first != index:
            errors.append(((path, index), "duplicate item %s, also at [%d]: this list is a set" % (json.dumps(item), first)))


# ---------------------------------------------------------------------------------------------------------------
# The validator
# ---------------------------------------------------------------------------------------------------------------

class Validator:
    """Checks whole objects: finds each one's schema from apiVersion and kind, compiles it once, runs it.

    ``tables`` maps a group-version path (``apis/apps/v1``) to its compact table; ``source`` names where they came
    from, for messages."""

    def __init__(self, tables, source="the schema", max_errors_per_object=25):
        self.tables = tables
        self.source = source
        self.max_errors = max_errors_per_object
        self.compilers = {}
        self.roots = {}

    def root(self, api_version, kind):
        """The checker for one kind; None when the schema does not know it."""
        key = (api_version, kind)
        if key not in self.roots:
            func = None
            try:
                gv_path = group_version_path(api_version)
            except InputError:
                gv_path = None
            table = self.tables.get(gv_path)
            name = table and table["kinds"].get("%s:%s" % (api_version, kind))
            if name:
                compiler = self.compilers.get(gv_path)
                if compiler is None:
                    compiler = self.compilers[gv_path] = _Compiler(table)
                func = compiler.named(name)
            self.roots[key] = func
        return self.roots[key]

    def resource_path(self, api_version, kind):
        """The object URL template from the schema's document (None when unknown)."""
        try:
            table = self.tables.get(group_version_path(api_version)) or {}
        except InputError:
            return None
        return (table.get("resources") or {}).get("%s:%s" % (api_version, kind))

    def validate(self, obj):
        """[(json path, message)] for one object (empty when valid)."""
        if not isinstance(obj, dict):
            return [("(object)", "expected an object (mapping), got %s" % describe(obj))]
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        missing = [(key, "required field missing") for key in ("apiVersion", "kind") if not isinstance(obj.get(key), str) or not obj.get(key)]
        if missing:
            return missing
        func = self.root(api_version, kind)
        if func is None:
            return [("kind", "%s is not a kind of apiVersion %s in %s" % (kind, api_version, self.source))]
        raw = []
        func(obj, None, raw)
        return [(path_text(path), message) for path, message in raw[:self.max_errors]] + (
            [("(object)", "%d more errors not shown" % (len(raw) - self.max_errors))] if len(raw) > self.max_errors else [])


def needed_documents(objects):
    """The group-version paths that a list of objects needs (objects without a usable apiVersion are skipped)."""
    paths = set()
    for obj in objects:
        try:
            paths.add(group_version_path((obj or {}).get("apiVersion")))
        except (InputError, AttributeError):
            continue
    return sorted(paths)
