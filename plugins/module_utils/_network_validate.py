# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Addresses and network ranges of an inventory, checked with netaddr on the controller (pure, no I/O).

Used by the inventory tests (tests/unit/inventories) and by playbooks through the filters in
``plugins/filter/network_validate.py`` (``sophia_ai.platform.cidr_overlaps``, ``sophia_ai.platform.network_problems``).
The host-side pre-flight of role ``k3s_install`` (``k3s_preflight``) checks the same ranges against what a host
really has (its routes, Swarm's networks); this module checks what an inventory *declares*, before any host is
contacted.

The variables read, per host (group_vars and host vars merged, as ``hostvars[host]`` has them):

``k3s_install_cluster_cidr`` / ``k3s_install_service_cidr`` / ``k3s_install_cluster_dns``
    K3s's pod and service ranges (comma-separated for dual stack) and DNS address; on hosts of ``k3s_servers``
    and ``k3s_agents``, K3s's defaults (10.42.0.0/16, 10.43.0.0/16, the tenth address of the service range) when
    unset.
``swarm_default_addr_pool`` / ``swarm_subnet_size``
    The Swarm's address pools (``docker swarm init --default-addr-pool``) and the size of each network cut from
    them; on hosts of ``swarm_managers`` and ``swarm_workers``, Docker's defaults (10.0.0.0/8, /24) when unset:
    the default pool contains K3s's default ranges, the clash the phase 2 issue names.
``swarm_network_subnets``
    Subnets of Swarm networks created outside the pools (``docker network create --subnet``).
``docker_bridge_subnets``
    Docker's local bridges on Swarm hosts (``docker0``, ``docker_gwbridge``); default 172.17.0.0/16, 172.18.0.0/16.
``node_networks``
    The networks the hosts sit on (Lambda's private network of a region); no range above may overlap them, and
    ``k3s_install_node_ip`` must lie in one of them when they are given.
``ansible_host``, ``k3s_install_node_ip``, ``k3s_install_api_endpoint``, ``swarm_advertise_addr``
    Node addresses: valid, not inside a pod, service, Swarm or bridge range; ``ansible_host`` and
    ``k3s_install_node_ip`` not used by two hosts (``ansible_host`` and ``k3s_install_api_endpoint``, a VIP or a
    load balancer, may be DNS names instead).

Every problem is a dict ``{"host", "variable", "value", "problem", "fix"}``; :func:`message` joins them.
"""

from __future__ import annotations

import traceback

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import DependencyError, InputError

try:
    import netaddr
except ImportError:  # pragma: no cover - netaddr is in requirements/requirements.txt
    netaddr = None
    NETADDR_IMPORT_ERROR = traceback.format_exc()
else:
    NETADDR_IMPORT_ERROR = None

K3S_DEFAULTS = {"k3s_install_cluster_cidr": "10.42.0.0/16", "k3s_install_service_cidr": "10.43.0.0/16"}
SWARM_DEFAULT_POOL = ["10.0.0.0/8"]
SWARM_DEFAULT_SUBNET_SIZE = 24
DOCKER_DEFAULT_BRIDGES = ["172.17.0.0/16", "172.18.0.0/16"]
K3S_GROUPS = ("k3s_servers", "k3s_agents")
SWARM_GROUPS = ("swarm_managers", "swarm_workers")
ADDRESS_VARS = ("ansible_host", "k3s_install_node_ip", "k3s_install_api_endpoint", "swarm_advertise_addr")
NAME_ALLOWED = ("ansible_host", "k3s_install_api_endpoint")  # may be a DNS name instead of an address
VARS_READ = tuple(K3S_DEFAULTS) + (
    "k3s_install_cluster_dns", "swarm_default_addr_pool", "swarm_subnet_size", "swarm_network_subnets",
    "docker_bridge_subnets", "node_networks") + ADDRESS_VARS
FREE_SUGGESTIONS = ("100.64.0.0/16", "100.65.0.0/16", "172.20.0.0/16", "172.21.0.0/16", "192.168.64.0/18")


def _need_netaddr():
    if netaddr is None:
        raise DependencyError("the Python library netaddr is missing on the controller. Fix: pip install netaddr "
                              "(requirements/requirements.txt)", exception=NETADDR_IMPORT_ERROR)


def as_list(value):
    """A CIDR list from a string (comma-separated allowed), a list, or nothing."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            out.extend(as_list(item))
        return out
    return [str(value)]


def parse_ip(value, variable="address"):
    """A ``netaddr.IPAddress``; raises :class:`InputError` naming the variable."""
    _need_netaddr()
    text = str(value).strip()
    try:
        if "/" in text or not text:
            raise ValueError(text)
        return netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InputError("%s=%r is not an IP address. Fix: set %s to an IPv4 or IPv6 address, e.g. 10.19.8.11"
                         % (variable, value, variable), variable=variable, value=str(value)) from None


def parse_cidr(value, variable="network"):
    """A ``netaddr.IPNetwork`` written as its network address (10.42.0.0/16, not 10.42.1.0/16)."""
    _need_netaddr()
    text = str(value).strip()
    try:
        if "/" not in text:
            raise ValueError(text)
        net = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InputError("%s=%r is not a network in CIDR notation. Fix: write it as address/prefix, e.g. "
                         "10.42.0.0/16" % (variable, value), variable=variable, value=str(value)) from None
    if net.ip != net.network:
        raise InputError("%s=%s has host bits set: its network is %s. Fix: set %s to %s"
                         % (variable, text, net.cidr, variable, net.cidr),
                         variable=variable, value=text)
    return net


def overlaps(left, right):
    """Whether two networks share an address (networks of different IP versions never do)."""
    if left.version != right.version:
        return False
    return left.first <= right.last and right.first <= left.last


def cidr_overlaps(left, right=None):
    """Pairs ``[a, b]`` of overlapping networks, ``a`` from ``left`` and ``b`` from ``right``.

    Without ``right``, the overlapping pairs within ``left``. Strings, comma-separated strings or lists; invalid
    entries raise :class:`InputError`.
    """
    lefts = [(text, parse_cidr(text, "cidr")) for text in as_list(left)]
    if right is None:
        return [[a, b] for i, (a, na) in enumerate(lefts) for (b, nb) in lefts[i + 1:] if overlaps(na, nb)]
    rights = [(text, parse_cidr(text, "cidr")) for text in as_list(right)]
    return [[a, b] for a, na in lefts for b, nb in rights if overlaps(na, nb)]


def _problem(host, variable, value, problem, fix):
    return {"host": host, "variable": variable, "value": value, "problem": problem, "fix": fix}


def _suggest(taken):
    for candidate in FREE_SUGGESTIONS:
        net = netaddr.IPNetwork(candidate)
        if not any(overlaps(net, other) for other in taken):
            return candidate
    return "a range clear of %s" % ", ".join(str(n) for n in taken)


def host_plan(name, hostvars, groups):
    """The ranges and addresses one host declares, defaults filled in by the groups it is in."""
    in_k3s = any(g in groups for g in K3S_GROUPS)
    in_swarm = any(g in groups for g in SWARM_GROUPS)
    plan = {"host": name, "k3s": in_k3s, "swarm": in_swarm, "ranges": {}, "addresses": {}}
    for var, default in K3S_DEFAULTS.items():
        value = hostvars.get(var, default if in_k3s else None)
        if value not in (None, ""):
            plan["ranges"][var] = as_list(value)
    if hostvars.get("k3s_install_cluster_dns") not in (None, ""):
        plan["cluster_dns"] = str(hostvars["k3s_install_cluster_dns"])
    pool = hostvars.get("swarm_default_addr_pool", SWARM_DEFAULT_POOL if in_swarm else None)
    if pool not in (None, ""):
        plan["ranges"]["swarm_default_addr_pool"] = as_list(pool)
    plan["subnet_size"] = hostvars.get("swarm_subnet_size", SWARM_DEFAULT_SUBNET_SIZE)
    for var in ("swarm_network_subnets",):
        if hostvars.get(var) not in (None, ""):
            plan["ranges"][var] = as_list(hostvars[var])
    bridges = hostvars.get("docker_bridge_subnets", DOCKER_DEFAULT_BRIDGES if in_swarm else None)
    if bridges not in (None, ""):
        plan["ranges"]["docker_bridge_subnets"] = as_list(bridges)
    plan["node_networks"] = as_list(hostvars.get("node_networks"))
    for var in ADDRESS_VARS:
        if hostvars.get(var) not in (None, ""):
            plan["addresses"][var] = str(hostvars[var])
    return plan


# Pairs of range variables that must not overlap (the order names the variable to change first).
_MUST_NOT_OVERLAP = (
    ("k3s_install_cluster_cidr", "k3s_install_service_cidr"),
    ("k3s_install_cluster_cidr", "swarm_default_addr_pool"),
    ("k3s_install_service_cidr", "swarm_default_addr_pool"),
    ("k3s_install_cluster_cidr", "swarm_network_subnets"),
    ("k3s_install_service_cidr", "swarm_network_subnets"),
    ("k3s_install_cluster_cidr", "docker_bridge_subnets"),
    ("k3s_install_service_cidr", "docker_bridge_subnets"),
    ("swarm_default_addr_pool", "docker_bridge_subnets"),
)
_RANGE_NAMES = {"k3s_install_cluster_cidr": "K3s pod range", "k3s_install_service_cidr": "K3s service range",
                "swarm_default_addr_pool": "Swarm address pool", "swarm_network_subnets": "Swarm network",
                "docker_bridge_subnets": "Docker bridge", "node_networks": "node network"}


def check_host(plan):
    """Problems of one host's plan (see :func:`host_plan`)."""
    _need_netaddr()
    host, problems, nets = plan["host"], [], {}
    for var, values in list(plan["ranges"].items()) + [("node_networks", plan["node_networks"])]:
        nets[var] = []
        for value in values:
            try:
                nets[var].append((value, parse_cidr(value, var)))
            except InputError as exc:
                problems.append(_problem(host, var, value, str(exc).split(". Fix:", 1)[0],
                                         str(exc).split(". Fix: ", 1)[-1]))
    taken = [n for pairs in nets.values() for _v, n in pairs]
    for left, right in _MUST_NOT_OVERLAP + tuple((var, "node_networks") for var in plan["ranges"]):
        for lv, ln in nets.get(left, []):
            for rv, rn in nets.get(right, []):
                if overlaps(ln, rn):
                    problems.append(_problem(
                        host, left, lv, "%s=%s overlaps %s=%s (%s)" % (left, lv, right, rv, _RANGE_NAMES[right]),
                        "set %s to a range clear of every other range of the plan, e.g. %s"
                        % (left, _suggest([n for n in taken if n is not ln]))))
    size = plan.get("subnet_size")
    pools = nets.get("swarm_default_addr_pool", [])
    if pools:
        try:
            size = int(size)
        except (TypeError, ValueError):
            size = None
        widest = max(n.prefixlen for _v, n in pools)
        limit = 30 if pools[0][1].version == 4 else 126
        if size is None or size < widest or size > limit:
            problems.append(_problem(host, "swarm_subnet_size", plan.get("subnet_size"),
                                     "swarm_subnet_size=%s does not fit the pools (prefix %d to %d)"
                                     % (plan.get("subnet_size"), widest, limit),
                                     "set swarm_subnet_size between %d and %d (Docker's default is 24)"
                                     % (widest, limit)))
    if "cluster_dns" in plan:
        try:
            dns = parse_ip(plan["cluster_dns"], "k3s_install_cluster_dns")
        except InputError as exc:
            problems.append(_problem(host, "k3s_install_cluster_dns", plan["cluster_dns"],
                                     str(exc).split(". Fix:", 1)[0], str(exc).split(". Fix: ", 1)[-1]))
        else:
            services = [n for _v, n in nets.get("k3s_install_service_cidr", [])]
            if services and not any(dns in n and dns not in (n.network, n.broadcast) for n in services):
                problems.append(_problem(host, "k3s_install_cluster_dns", str(dns),
                                         "k3s_install_cluster_dns=%s is not a usable address of "
                                         "k3s_install_service_cidr=%s" % (dns, ",".join(str(n) for n in services)),
                                         "set k3s_install_cluster_dns inside it, e.g. %s" % services[0][10]))
    for var, value in plan["addresses"].items():
        try:
            addr = parse_ip(value, var)
        except InputError as exc:
            if var in NAME_ALLOWED and _is_dns_name(value):
                continue
            problems.append(_problem(host, var, value, str(exc).split(". Fix:", 1)[0],
                                     str(exc).split(". Fix: ", 1)[-1]))
            continue
        for rvar, pairs in nets.items():
            if rvar == "node_networks":
                continue
            for rv, rn in pairs:
                if addr in rn:
                    problems.append(_problem(host, var, value, "%s=%s lies inside %s=%s (%s)"
                                             % (var, value, rvar, rv, _RANGE_NAMES[rvar]),
                                             "give the host an address outside %s, or move %s" % (rv, rvar)))
        node_nets = [n for _v, n in nets.get("node_networks", [])]
        if var == "k3s_install_node_ip" and node_nets and not any(addr in n for n in node_nets):
            problems.append(_problem(host, var, value, "%s=%s is outside node_networks (%s)"
                                     % (var, value, ", ".join(str(n) for n in node_nets)),
                                     "set %s to the host's address on the private network" % var))
    return problems


def _is_dns_name(value):
    labels = str(value).rstrip(".").split(".")
    return bool(labels) and not str(value).replace(".", "").isdigit() and all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and not label.startswith("-")
        for label in labels)


def check_inventory(hosts):
    """Problems of a whole inventory: ``hosts`` is ``{name: {"vars": hostvars, "groups": [group, ...]}}``.

    Checks each host (:func:`check_host`), that no address is claimed by two hosts, that K3s's ranges and the
    Swarm pools agree across hosts (one cluster, one Swarm), and that ``k3s_servers`` has an odd number of hosts
    (embedded etcd needs a majority: 1, or 3 for HA).
    """
    problems, owners, ranges = [], {}, {}
    groups_seen = {}
    for name in sorted(hosts):
        entry = hosts[name]
        plan = host_plan(name, entry.get("vars") or {}, entry.get("groups") or [])
        problems.extend(check_host(plan))
        for group in entry.get("groups") or []:
            groups_seen.setdefault(group, []).append(name)
        for var in ("ansible_host", "k3s_install_node_ip"):
            value = plan["addresses"].get(var)
            if value:
                owners.setdefault((var, value), []).append(name)
        for var in ("k3s_install_cluster_cidr", "k3s_install_service_cidr", "swarm_default_addr_pool"):
            if var in plan["ranges"] and (var.startswith("k3s") and plan["k3s"] or var.startswith("swarm")
                                          and plan["swarm"]):
                ranges.setdefault(var, {}).setdefault(",".join(plan["ranges"][var]), []).append(name)
    for (var, value), names in sorted(owners.items()):
        if len(names) > 1:
            problems.append(_problem(",".join(names), var, value, "%s=%s is set on %d hosts (%s)"
                                     % (var, value, len(names), ", ".join(names)),
                                     "give each host its own %s" % var))
    for var, values in sorted(ranges.items()):
        if len(values) > 1:
            problems.append(_problem(",".join(sorted(n for ns in values.values() for n in ns)), var,
                                     sorted(values), "%s differs between hosts of one cluster: %s"
                                     % (var, "; ".join("%s on %s" % (v, ", ".join(n)) for v, n in sorted(values.items()))),
                                     "set %s once, in group_vars/all" % var))
    servers = groups_seen.get("k3s_servers", [])
    if servers and len(servers) % 2 == 0:
        problems.append(_problem(",".join(servers), "k3s_servers", len(servers),
                                 "k3s_servers has %d hosts: embedded etcd needs an odd number to keep a majority"
                                 % len(servers), "put 1 or 3 (HA) hosts in k3s_servers"))
    return merge(problems)


def merge(problems):
    """The same problem on several hosts (a range set in group_vars/all) once, with the hosts joined."""
    merged, order = {}, []
    for item in problems:
        key = (item["variable"], str(item["value"]), item["problem"], item["fix"])
        if key not in merged:
            merged[key] = dict(item, host=[])
            order.append(key)
        for host in str(item["host"]).split(","):
            if host not in merged[key]["host"]:
                merged[key]["host"].append(host)
    return [dict(merged[key], host=",".join(merged[key]["host"])) for key in order]


def message(problems):
    """One line per problem, ready for ``fail`` / ``assert``."""
    return "\n".join("%s: %s. Fix: %s" % (p["host"], p["problem"], p["fix"]) for p in problems)
