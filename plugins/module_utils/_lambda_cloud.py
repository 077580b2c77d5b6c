# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Lambda Cloud API for the ``sophia_ai.platform.lambda_cloud`` inventory plugin (client and pure logic).

What we assume of the API (Lambda's OpenAPI description, version 1.10.0, and its documentation; the real API
cannot be reached from where this collection is tested, so the tests replay responses of that shape):

* ``GET <base_url>/instances`` with ``Authorization: Bearer <API key>`` (the API also takes the key as the user
  name of HTTP basic auth; we send Bearer). Production is ``https://cloud.lambda.ai/api/v1``;
  ``https://cloud.lambdalabs.com/api/v1`` is the older name of the same API.
* Success: ``{"data": [instance, ...]}``; an instance has ``id``, ``name``, ``ip``, ``private_ip``, ``status``
  (``booting``, ``active``, ``unhealthy``, ``terminating``, ``terminated``, ``preempted``), ``hostname``,
  ``region {name, description}``, ``instance_type {name, description, gpu_description, price_cents_per_hour,
  specs {vcpus, memory_gib, storage_gib, gpus}}``, ``ssh_key_names``, ``file_system_names``, ``is_reserved``,
  ``tags [{key, value}]`` and, secret, ``jupyter_token`` / ``jupyter_url`` (which we never keep).
* Errors: ``{"error": {"code", "message", "suggestion"}}``, e.g. 401 ``global/invalid-api-key``, 403
  ``global/account-inactive``; requests are limited to about one per second, and an API over its limit answers
  429, with or without ``Retry-After``.
* Pagination: version 1 returns every instance in one answer. Should a later version page, we follow what such
  APIs send: a ``next_page_token`` in the body (asked for again as ``?page_token=``), a ``next_cursor`` (as
  ``?cursor=``), or a ``Link: <url>; rel="next"`` header; pages are bounded (:data:`MAX_PAGES`), a token seen
  twice is an error, and a next link to another host is refused so that the key is never sent elsewhere.

Nothing here prints or returns the API key: every message passes :func:`redact`, exceptions that could carry it
are not chained, and the host variables (:func:`host_vars`) leave out the Jupyter token and URL.
"""

from __future__ import annotations

import email.utils
import fnmatch
import json
import os
import re
import socket
import stat
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError

DEFAULT_BASE_URL = "https://cloud.lambda.ai/api/v1"
KEY_ENV = ("LAMBDA_CLOUD_API_KEY", "LAMBDA_API_KEY")  # Ansible takes the last one set: LAMBDA_API_KEY wins
KEY_FILE_ENV = ("LAMBDA_API_KEY_FILE",)
BASE_URL_ENV = ("LAMBDA_CLOUD_BASE_URL",)
KEY_PAGE = "https://cloud.lambda.ai/api-keys/cloud-api"
MAX_PAGES = 100
MAX_BACKOFF_S = 30.0
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)
STATUSES = ("booting", "active", "unhealthy", "terminating", "terminated", "preempted")
HOSTNAME_SOURCES = ("name", "hostname", "id", "ip", "private_ip")
ADDRESS_SOURCES = ("ip", "private_ip", "hostname")
USER_AGENT = "sophia_ai.platform-lambda_cloud-inventory/0.1.0"
_GROUP_UNSAFE = re.compile(r"[^a-z0-9_]")
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces: anything else cannot go in a header


def redact(text, secret):
    """``text`` with ``secret`` (and its URL-quoted form) replaced by ``********``."""
    text = str(text)
    if secret:
        for form in (secret, urllib.parse.quote(secret, safe="")):
            text = text.replace(form, "********")
    return text


# --- the API key -------------------------------------------------------------------------------------------------

def key_source_label(option, origin, config_path):
    """Where a key came from, in words a user can act on (never the key)."""
    origin = origin or ""
    if origin.startswith("env:"):
        return "environment variable %s" % origin.split(":", 1)[1].strip()
    if option == "api_key_file":
        return "option api_key_file in %s" % config_path
    return "option api_key in %s" % config_path


def choose_key_source(candidates):
    """Pick the API key's source from ``[(option, origin, value), ...]``.

    A value written in the configuration file wins over one from the environment; between two of the same kind,
    ``api_key`` wins over ``api_key_file``. Returns ``(option, origin, value)`` or ``None``.
    """
    present = [c for c in candidates if c[2] not in (None, "")]
    if not present:
        return None

    def rank(candidate):
        option, origin = candidate[0], candidate[1] or ""
        return (1 if origin.startswith("env:") else 0, 0 if option == "api_key" else 1)

    return sorted(present, key=rank)[0]


def read_key_file(path):
    """The key in ``path`` and the warnings about the file. Raises :class:`InputError` naming the file."""
    warnings = []
    path = os.path.expanduser(str(path))
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError("api_key_file %s cannot be read (%s). Fix: point api_key_file (or LAMBDA_API_KEY_FILE) at "
                         "a file that holds the key, mode 0600" % (path, exc.strerror), file=path) from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError("api_key_file %s is not a regular file. Fix: point api_key_file at the file that holds "
                         "the key" % path, file=path)
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        warnings.append("api_key_file %s is readable by %s (mode %04o). Fix: chmod 600 %s"
                        % (path, "group and others" if mode & 0o007 and mode & 0o070 else
                           ("others" if mode & 0o007 else "its group"), mode, path))
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(4096)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("api_key_file %s cannot be read (%s). Fix: give a readable UTF-8 file that holds only the "
                         "key" % (path, getattr(exc, "strerror", None) or type(exc).__name__), file=path) from None
    key = text.strip()
    if not key:
        raise InputError("api_key_file %s is empty. Fix: write the API key into it (create one at %s)"
                         % (path, KEY_PAGE), file=path)
    return key, warnings


def check_key_shape(key, source):
    """A key with spaces, line breaks or non-ASCII characters cannot be sent; say so without echoing it."""
    if not _KEY_SHAPE.match(key):
        raise InputError("the API key from %s has spaces, line breaks or characters that cannot be sent in an HTTP "
                         "header (a file with more than the key in it?). Fix: give only the key, e.g. "
                         "secret_xxx.yyy, in %s" % (source, source), source=source)
    return key


# --- the client --------------------------------------------------------------------------------------------------

def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def next_page(body, headers, url, base_url):
    """The next page's URL, or ``None`` on the last page (see the module docstring for what we follow)."""
    token = body.get("next_page_token") if isinstance(body, dict) else None
    param = "page_token"
    if not token and isinstance(body, dict):
        token, param = body.get("next_cursor"), "cursor"
    if token:
        parts = urllib.parse.urlsplit(url)
        query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in ("page_token", "cursor")]
        query.append((param, str(token)))
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    link = headers.get("Link") if headers is not None else None
    if link:
        for part in link.split(","):
            match = re.match(r'\s*<([^>]*)>\s*;(.*)$', part)
            if match and re.search(r'rel\s*=\s*"?next"?', match.group(2)):
                target = urllib.parse.urljoin(url, match.group(1))
                if _origin(target) != _origin(base_url):
                    raise ApiError("the Lambda Cloud API at %s sent a next-page link to another host (%s); refused, "
                                   "so that the API key is not sent there. Fix: check base_url"
                                   % (base_url, _origin(target)), url=base_url)
                return target
    return None


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.netloc)


class Client:
    """GET the instance list, page by page, retrying 429 and 5xx answers within a bounded budget.

    ``opener`` (a :class:`urllib.request.OpenerDirector`), ``sleep`` and ``clock`` are arguments so that tests
    run without waiting; nothing else is injected.
    """

    def __init__(self, base_url, api_key, key_source="the API key option", timeout=30, retries=5,
                 max_retry_wait=60, opener=None, sleep=time.sleep, clock=time.monotonic, log=None):
        self.base_url = str(base_url or DEFAULT_BASE_URL).rstrip("/")
        self._key = api_key
        self.key_source = key_source
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._opener = opener or urllib.request.build_opener()
        self._sleep = sleep
        self._clock = clock
        self._log = log or (lambda msg: None)
        self.requests = 0
        self.waited = 0.0
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError("base_url %r is not an http(s) URL. Fix: set base_url to the API's root, e.g. %s"
                             % (redact(base_url, api_key), DEFAULT_BASE_URL), option="base_url")

    def _fail(self, cls, msg, **details):
        clean = {k: redact(v, self._key) if isinstance(v, str) else v for k, v in details.items()}
        return cls(redact(msg, self._key), **clean)

    def list_instances(self):
        """Every instance the key can see, in the API's order, across pages."""
        url = self.base_url + "/instances"
        seen, instances = set(), []
        for _page in range(MAX_PAGES):
            if url in seen:
                raise self._fail(ApiError, "the Lambda Cloud API at %s sent the same next page twice (%s); stopped "
                                 "rather than loop. Fix: check base_url; report it to Lambda if it is theirs"
                                 % (self.base_url, url), url=self.base_url)
            seen.add(url)
            body, headers = self._get(url)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
                raise self._fail(ApiError, "%s answered JSON without a list of instances under 'data' (keys: %s). Fix: "
                                 "check base_url (it should be like %s)"
                                 % (url, ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__,
                                    DEFAULT_BASE_URL), url=self.base_url)
            instances.extend(data)
            following = next_page(body, headers, url, self.base_url)
            if not following:
                return instances
            url = following
        raise self._fail(ApiError, "the Lambda Cloud API at %s sent more than %d pages of instances; stopped. Fix: "
                         "check base_url" % (self.base_url, MAX_PAGES), url=self.base_url)

    def _request(self, url):
        request = urllib.request.Request(url, headers={
            "Authorization": "Bearer " + self._key, "Accept": "application/json", "User-Agent": USER_AGENT})
        return self._opener.open(request, timeout=self.timeout)

    def _get(self, url):
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            self._log("GET %s (attempt %d)" % (url, attempt))
            status, headers, raw, reason = None, None, b"", ""
            try:
                with self._request(url) as response:
                    status, headers, raw = response.status, response.headers, response.read()
            except urllib.error.HTTPError as exc:
                status, headers, reason = exc.code, exc.headers, exc.reason
                try:
                    raw = exc.read()
                except (OSError, ValueError):
                    raw = b""
                finally:
                    exc.close()
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                why = getattr(exc, "reason", None) or exc
                transient = isinstance(why, (socket.timeout, TimeoutError, ConnectionResetError))
                if transient and attempt <= self.retries:
                    self._wait(None, attempt, "no answer (%s)" % why)
                    continue
                raise self._fail(ApiError, "could not reach the Lambda Cloud API at %s: %s. Fix: check base_url "
                                 "(default %s), DNS, the proxy (HTTPS_PROXY) and the firewall; a slow API needs a "
                                 "larger timeout (now %ss)" % (self.base_url, why, DEFAULT_BASE_URL, self.timeout),
                                 url=self.base_url, reason=str(why)) from None
            except ValueError as exc:
                raise self._fail(ApiError, "cannot send a request to %s: %s. Fix: check base_url and the API key's "
                                 "characters" % (self.base_url, exc), url=self.base_url) from None
            body, error = _decode(raw)
            if status == 200:
                if body is None:
                    raise self._fail(ApiError, "%s answered 200 with something that is not JSON (%s). Fix: check "
                                     "base_url: it should be the Lambda Cloud API's root, like %s"
                                     % (url, (headers or {}).get("Content-Type", "no content type"),
                                        DEFAULT_BASE_URL), url=self.base_url, status=status)
                return body, headers
            if status in TRANSIENT_STATUSES and attempt <= self.retries:
                self._wait(parse_retry_after((headers or {}).get("Retry-After")), attempt,
                           "HTTP %s%s" % (status, _error_words(error)))
                continue
            raise self._status_error(status, reason, error, attempt)

    def _wait(self, retry_after, attempt, why):
        delay = retry_after if retry_after is not None else min(MAX_BACKOFF_S, float(2 ** (attempt - 1)))
        left = self.max_retry_wait - self.waited
        if delay > left:
            raise self._fail(ApiError, "the Lambda Cloud API at %s is rate limiting or failing (%s) and asks to wait "
                             "%.0fs more, beyond max_retry_wait (%ss, %.0fs already waited over %d requests). Fix: "
                             "wait a minute and run again, raise max_retry_wait, or turn on the inventory cache "
                             "(cache: true) so that runs reuse the list; the API allows about one request per second"
                             % (self.base_url, why, delay, self.max_retry_wait, self.waited, self.requests),
                             url=self.base_url, reason=why)
        self._log("%s: waiting %.1fs before retry %d of %d" % (why, delay, attempt, self.retries))
        self.waited += delay
        self._sleep(delay)

    def _status_error(self, status, reason, error, attempts):
        words = _error_words(error)
        tries = " after %d attempts" % attempts if attempts > 1 else ""
        if status == 401:
            return self._fail(ApiError, "the Lambda Cloud API at %s refused the API key from %s (HTTP 401%s). Fix: "
                              "replace the key in %s with a valid one (create one at %s)"
                              % (self.base_url, self.key_source, words, self.key_source, KEY_PAGE),
                              url=self.base_url, status=status, code=(error or {}).get("code"))
        if status == 403:
            return self._fail(ApiError, "the Lambda Cloud API at %s denied the request (HTTP 403%s). Fix: %s"
                              % (self.base_url, words, (error or {}).get("suggestion") or
                                 "check that the account is active and that the key from %s may list instances"
                                 % self.key_source), url=self.base_url, status=status, code=(error or {}).get("code"))
        if status == 404:
            return self._fail(ApiError, "%s/instances does not exist (HTTP 404%s). Fix: base_url should be the API's "
                              "root, like %s" % (self.base_url, words, DEFAULT_BASE_URL),
                              url=self.base_url, status=status)
        if status == 429:
            return self._fail(ApiError, "the Lambda Cloud API at %s is still rate limiting (HTTP 429%s)%s. Fix: wait "
                              "a minute and run again, raise retries or max_retry_wait, or turn on the inventory "
                              "cache (cache: true); the API allows about one request per second"
                              % (self.base_url, words, tries), url=self.base_url, status=status)
        if status and status >= 500:
            return self._fail(ApiError, "the Lambda Cloud API at %s failed (HTTP %s%s)%s. Fix: the fault is on the "
                              "API's side: run again later, or raise retries" % (self.base_url, status, words, tries),
                              url=self.base_url, status=status)
        return self._fail(ApiError, "the Lambda Cloud API at %s answered HTTP %s %s%s. Fix: %s"
                          % (self.base_url, status, reason or "", words, (error or {}).get("suggestion") or
                             "check base_url and the plugin's options"), url=self.base_url, status=status)


def _decode(raw):
    """(JSON body or None, the API's error object or None)."""
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    return body, error if isinstance(error, dict) else None


def _error_words(error):
    if not error:
        return ""
    words = [str(error[k]) for k in ("code", "message") if error.get(k)]
    text = ", ".join(words)
    if error.get("suggestion"):
        text += " - %s" % error["suggestion"]
    return ": " + text if text else ""


# --- hosts and groups --------------------------------------------------------------------------------------------

def group_name(prefix, value):
    """A valid Ansible group name: lower case, anything but letters, digits and _ turned into _."""
    return prefix + _GROUP_UNSAFE.sub("_", str(value).lower())


def host_vars(instance):
    """The ``lambda_*`` host variables of one instance. Jupyter's token and URL (a secret) are left out."""
    region = instance.get("region") or {}
    itype = instance.get("instance_type") or {}
    specs = itype.get("specs") or {}
    tags = {}
    for tag in instance.get("tags") or []:
        if isinstance(tag, dict) and tag.get("key") is not None:
            tags[str(tag["key"])] = tag.get("value")
    return {
        "lambda_id": instance.get("id"),
        "lambda_name": instance.get("name") or "",
        "lambda_status": instance.get("status"),
        "lambda_ip": instance.get("ip") or "",
        "lambda_private_ip": instance.get("private_ip") or "",
        "lambda_hostname": instance.get("hostname") or "",
        "lambda_region": region.get("name"),
        "lambda_region_description": region.get("description"),
        "lambda_instance_type": itype.get("name"),
        "lambda_instance_type_description": itype.get("description"),
        "lambda_gpu_description": itype.get("gpu_description"),
        "lambda_price_cents_per_hour": itype.get("price_cents_per_hour"),
        "lambda_vcpus": specs.get("vcpus"),
        "lambda_memory_gib": specs.get("memory_gib"),
        "lambda_storage_gib": specs.get("storage_gib"),
        "lambda_gpus": int(specs.get("gpus") or 0),
        "lambda_ssh_key_names": list(instance.get("ssh_key_names") or []),
        "lambda_file_system_names": list(instance.get("file_system_names") or []),
        "lambda_is_reserved": bool(instance.get("is_reserved", False)),
        "lambda_tags": tags,
    }


def select(instances, statuses=("active",), name_pattern=None, regions=None, instance_types=None):
    """The instances that pass the filters (``name_pattern``: a regular expression searched in the name)."""
    try:
        pattern = re.compile(name_pattern) if name_pattern else None
    except re.error as exc:
        raise InputError("name_pattern %r is not a regular expression (%s). Fix: correct name_pattern, e.g. "
                         "'^k3s-'" % (name_pattern, exc), option="name_pattern") from None
    wanted = set(statuses or ())
    chosen = []
    for instance in instances:
        if wanted and instance.get("status") not in wanted:
            continue
        if pattern and not pattern.search(instance.get("name") or ""):
            continue
        if regions and not any(fnmatch.fnmatchcase((instance.get("region") or {}).get("name") or "", r)
                               for r in regions):
            continue
        if instance_types and not any(fnmatch.fnmatchcase((instance.get("instance_type") or {}).get("name") or "", t)
                                      for t in instance_types):
            continue
        chosen.append(instance)
    return chosen


def build_hosts(instances, hostnames=("name", "id"), address=("ip",), gpu_group="gpu"):
    """Host entries ``{"name", "vars", "groups"}`` for the filtered instances, and warnings.

    The host is named by the first of ``hostnames`` that the instance has and no other host took (two instances
    with the same name: the second falls to the next choice, at last its id, which is unique); ``ansible_host``
    is the first of ``address`` that it has. Default groups: ``lambda_<instance type>``,
    ``lambda_region_<region>``, ``lambda_status_<status>`` and, with GPUs, ``gpu_group``.
    """
    hosts, warnings, taken = [], [], set()
    for instance in sorted(instances, key=lambda i: ((i.get("name") or ""), str(i.get("id")))):
        hv = host_vars(instance)
        names = [str(instance.get(src)) for src in hostnames if instance.get(src)]
        name = next((n for n in names if n not in taken), None)
        if name is None:
            name = str(instance.get("id"))
        if names and name != names[0]:
            warnings.append("Lambda instance %s: host name %r is taken by another instance; named %r instead"
                            % (instance.get("id"), names[0], name))
        taken.add(name)
        for src in address:
            if instance.get(src):
                hv["ansible_host"] = instance[src]
                break
        groups = []
        if hv["lambda_instance_type"]:
            groups.append(group_name("lambda_", hv["lambda_instance_type"]))
        if hv["lambda_region"]:
            groups.append(group_name("lambda_region_", hv["lambda_region"]))
        if hv["lambda_status"]:
            groups.append(group_name("lambda_status_", hv["lambda_status"]))
        if gpu_group and hv["lambda_gpus"] > 0:
            groups.append(gpu_group)
        hosts.append({"name": name, "vars": hv, "groups": groups})
    return hosts, warnings
