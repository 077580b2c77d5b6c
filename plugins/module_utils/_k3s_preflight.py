# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""K3s pre-flight on a host that may also run Docker Swarm: address ranges and ports, before anything is installed.

Pure layer (no I/O): :func:`parse_proc_net`, :func:`parse_route`, :func:`parse_ipv6_route`, :func:`swarm_networks`,
:func:`required_ports`, :func:`check_networks`, :func:`check_ports`, :func:`suggest_free`. They take text and dicts
(what ``/proc/net/*`` and the Docker Engine API give) and return data; :func:`preflight` puts them together.

Readers (I/O, kept apart so tests can point them at captured files): :func:`read_host` reads ``/proc/net/{tcp,tcp6,
udp,udp6,route,ipv6_route}`` and the owners of the listening sockets (``/proc/<pid>/fd`` links to ``socket:[inode]``);
:func:`read_docker` asks the engine ``GET /info`` (Swarm's default address pools and data path port) and
``GET /networks`` (every network's IPAM subnets) over its unix socket with the standard library. ``GET /swarm`` is
never asked: it returns the join tokens.

The standard library's :mod:`ipaddress` does the address work rather than netaddr: the module runs on the managed
host, where netaddr is not a given (Debian's minimal images lack it), and ``ipaddress`` has what is needed here
(overlap tests and subnet walks).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError

# --- what K3s and Swarm use ----------------------------------------------------------------------------------------

SWARM_MANAGER_PORT = 2377
SWARM_GOSSIP_PORT = 7946
SWARM_DEFAULT_DATA_PATH_PORT = 4789

FLANNEL_BACKENDS = ("vxlan", "host-gw", "wireguard-native", "none")
FLANNEL_PORTS = {"vxlan": [(8472, "udp")], "wireguard-native": [(51820, "udp"), (51821, "udp")]}
FLANNEL_INTERFACES = {"vxlan": ("flannel.1", "flannel-v6.1"), "wireguard-native": ("flannel-wg", "flannel-wg-v6")}

# Interfaces K3s itself creates: their routes are K3s's own cluster CIDR on a rerun, not a clash.
K3S_INTERFACES = ("cni0", "flannel.1", "flannel-v6.1", "flannel-wg", "flannel-wg-v6", "kube-ipvs0")
K3S_PROCESS_NAMES = ("k3s", "k3s-server", "k3s-agent", "k3s-init")

# Where a suggested replacement range is looked for, in this order (RFC 1918, then RFC 4193 for IPv6).
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
PRIVATE_V6 = ("fd00::/8",)

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def required_ports(role, flannel_backend, api_port=6443, embedded_etcd=True):
    """The ports K3s binds on a node of this role, as dicts {port, proto, purpose, variable}.

    ``variable`` names the role variable that moves K3s off the port, or None when only the other holder can move.
    """
    ports = []
    if role == "server":
        ports.append({"port": api_port, "proto": "tcp", "purpose": "K3s supervisor and Kubernetes API",
                      "variable": "k3s_install_api_port"})
        if embedded_etcd:
            ports += [{"port": 2379, "proto": "tcp", "purpose": "embedded etcd clients", "variable": None},
                      {"port": 2380, "proto": "tcp", "purpose": "embedded etcd peers", "variable": None}]
    ports.append({"port": 10250, "proto": "tcp", "purpose": "kubelet", "variable": None})
    for port, proto in FLANNEL_PORTS.get(flannel_backend, []):
        ports.append({"port": port, "proto": proto, "purpose": "flannel %s" % flannel_backend,
                      "variable": "k3s_install_flannel_backend"})
    return ports


def swarm_ports(swarm):
    """Swarm's own ports on this host, from what :func:`swarm_networks` found (empty when no Swarm is active)."""
    if not swarm.get("active"):
        return []
    ports = [{"port": SWARM_GOSSIP_PORT, "proto": "tcp", "purpose": "Swarm node gossip"},
             {"port": SWARM_GOSSIP_PORT, "proto": "udp", "purpose": "Swarm node gossip"},
             {"port": swarm.get("data_path_port") or SWARM_DEFAULT_DATA_PATH_PORT, "proto": "udp",
              "purpose": "Swarm overlay data path (VXLAN)"}]
    if swarm.get("manager"):
        ports.insert(0, {"port": SWARM_MANAGER_PORT, "proto": "tcp", "purpose": "Swarm cluster management"})
    return ports


# --- /proc/net parsers ---------------------------------------------------------------------------------------------

def _hex_address(text):
    """``0100007F`` (IPv4, little-endian) or the 32-hex-digit IPv6 form of /proc/net/* as an ip_address."""
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # IPv6: four 32-bit words, each in host (little-endian) order
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def parse_proc_net(text, proto):
    """Bound sockets of /proc/net/{tcp,tcp6,udp,udp6}: TCP sockets in LISTEN, UDP sockets not connected.

    Returns dicts {proto, address, port, inode}.
    """
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        state = fields[3]
        if state != (TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED):
            continue
        address, port = fields[1].rsplit(":", 1)
        sockets.append({"proto": proto, "address": str(_hex_address(address)), "port": int(port, 16),
                        "inode": int(fields[9])})
    return sockets


RTF_UP = 0x1


def parse_route(text):
    """IPv4 routes of /proc/net/route as dicts {network, interface}, the default route left out."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or not int(fields[3], 16) & RTF_UP:
            continue
        dest, mask = _hex_address(fields[1]), _hex_address(fields[7])
        network = ipaddress.IPv4Network("%s/%s" % (dest, mask), strict=False)
        if network.prefixlen == 0:
            continue
        routes.append({"network": str(network), "interface": fields[0]})
    return routes


def parse_ipv6_route(text):
    """IPv6 routes of /proc/net/ipv6_route as dicts {network, interface}.

    Left out: the default route, host routes (/128: the host's own addresses), link-local, multicast and loopback
    networks, and routes on ``lo``.
    """
    routes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        network = ipaddress.IPv6Network("%s/%d" % (ipaddress.IPv6Address(bytes.fromhex(fields[0])),
                                                   int(fields[1], 16)), strict=False)
        if (network.prefixlen in (0, 128) or network.is_link_local or network.is_multicast or network.is_loopback
                or fields[9] == "lo"):
            continue
        route = {"network": str(network), "interface": fields[9]}
        if route not in routes:
            routes.append(route)
    return routes


# --- Docker -----------------------------------------------------------------------------------------------------

def swarm_networks(info, networks):
    """Swarm state and the address ranges Docker uses, from ``GET /info`` and ``GET /networks``.

    Returns {active, manager, default_addr_pools, subnet_size, data_path_port, networks: [{name, driver, scope,
    subnets}]}. Local networks (bridges) count too: their subnets are routes on this host.
    """
    swarm = (info or {}).get("Swarm") or {}
    cluster = swarm.get("Cluster") or {}
    active = swarm.get("LocalNodeState") == "active"
    result = {
        "active": active,
        "manager": bool(active and swarm.get("ControlAvailable")),
        "default_addr_pools": list(cluster.get("DefaultAddrPool") or []) if active else [],
        "subnet_size": cluster.get("SubnetSize"),
        "data_path_port": cluster.get("DataPathPort") if active else None,
        "networks": [],
    }
    # A worker does not see the cluster's settings (Cluster is empty there): Swarm's default pool is 10.0.0.0/8
    # unless the manager was initialised with --default-addr-pool, which only a manager can tell.
    if active and not result["default_addr_pools"] and not result["manager"]:
        result["default_addr_pools"] = ["10.0.0.0/8"]
        result["default_addr_pools_assumed"] = True
    for net in networks or []:
        subnets = [cfg["Subnet"] for cfg in ((net.get("IPAM") or {}).get("Config") or []) if cfg.get("Subnet")]
        result["networks"].append({"name": net.get("Name"), "driver": net.get("Driver"), "scope": net.get("Scope"),
                                   "subnets": subnets})
    return result


# --- checks -----------------------------------------------------------------------------------------------------

def parse_cidrs(value, variable):
    """``10.42.0.0/16`` or a dual-stack ``10.42.0.0/16,2001:cafe:42::/56`` as a list of ip_network."""
    nets = []
    for part in str(value).split(","):
        part = part.strip()
        try:
            nets.append(ipaddress.ip_network(part, strict=True))
        except ValueError as exc:
            raise InputError("%s=%r is not a network in CIDR form (%s). Fix: give e.g. 10.42.0.0/16"
                             % (variable, value, exc), variable=variable, value=value) from None
    return nets


def default_cluster_dns(service_cidr):
    """K3s's default cluster DNS address: the tenth address of the (first) service CIDR."""
    return str(parse_cidrs(service_cidr, "k3s_install_service_cidr")[0][10])


def suggest_free(prefixlen, version, used):
    """The first private network of this size that overlaps none of ``used`` (ip_networks), or None."""
    for pool in (PRIVATE_V4 if version == 4 else PRIVATE_V6):
        pool = ipaddress.ip_network(pool)
        if prefixlen < pool.prefixlen:
            continue
        step = 1 << (pool.max_prefixlen - prefixlen)
        candidate = int(pool.network_address)
        end = int(pool.broadcast_address)
        while candidate <= end:
            net = ipaddress.ip_network((candidate, prefixlen))
            blocking = [u for u in used if u.version == version and u.overlaps(net)]
            if not blocking:
                return str(net)
            # jump past the highest blocking network (subnets of the pool are aligned to step)
            top = max(int(u.broadcast_address) for u in blocking)
            candidate = max(candidate + step, ((top // step) + 1) * step)
    return None


def _used_ranges(swarm, routes, ignore_interfaces):
    used = []
    for pool in swarm.get("default_addr_pools") or []:
        used.append({"network": pool, "source": "Swarm default address pool%s"
                     % (" (assumed: a worker cannot read it)" if swarm.get("default_addr_pools_assumed") else "")})
    for net in swarm.get("networks") or []:
        for subnet in net["subnets"]:
            used.append({"network": subnet, "source": "Docker network %s (%s, %s)"
                         % (net["name"], net["driver"], net["scope"])})
    for route in routes:
        if route["interface"] in ignore_interfaces:
            continue
        used.append({"network": route["network"], "source": "route on interface %s" % route["interface"]})
    return used


def check_networks(cluster_cidr, service_cidr, cluster_dns, swarm, routes, ignore_interfaces=K3S_INTERFACES):
    """Clashes of K3s's cluster and service CIDRs (and the cluster DNS address) with each other, with Swarm's pools
    and networks and with the host's routes. Returns a list of clash dicts."""
    clashes = []
    mine = {"k3s_install_cluster_cidr": parse_cidrs(cluster_cidr, "k3s_install_cluster_cidr"),
            "k3s_install_service_cidr": parse_cidrs(service_cidr, "k3s_install_service_cidr")}
    used = []
    for item in _used_ranges(swarm, routes, ignore_interfaces):
        try:
            used.append((ipaddress.ip_network(item["network"], strict=False), item["source"]))
        except ValueError:
            continue
    all_mine = [net for nets in mine.values() for net in nets]
    suggested = []  # a range already suggested for the other variable is not suggested again
    for variable, nets in mine.items():
        for net in nets:
            conflicts = [(other, source) for other, source in used if other.version == net.version
                         and other.overlaps(net)]
            if variable == "k3s_install_service_cidr":
                conflicts += [(other, "k3s_install_cluster_cidr") for other in mine["k3s_install_cluster_cidr"]
                              if other.version == net.version and other.overlaps(net)]
            if not conflicts:
                continue
            avoid = [other for other, _src in used] + [other for other in all_mine if other != net] + suggested
            suggestion = suggest_free(net.prefixlen, net.version, avoid)
            if suggestion:
                suggested.append(ipaddress.ip_network(suggestion))
            with_text = "; ".join("%s (%s)" % (other, source) for other, source in conflicts)
            clashes.append({
                "kind": "network", "variable": variable, "value": str(net),
                "conflicts_with": [{"network": str(other), "source": source} for other, source in conflicts],
                "suggestion": suggestion,
                "msg": "%s=%s overlaps %s. Fix: set %s to a free range%s"
                       % (variable, net, with_text, variable,
                          (", e.g. %s" % suggestion) if suggestion else " (none of the private ranges is free)"),
            })
    if cluster_dns:
        try:
            dns = ipaddress.ip_address(cluster_dns)
        except ValueError:
            raise InputError("k3s_install_cluster_dns=%r is not an IP address" % cluster_dns,
                             variable="k3s_install_cluster_dns", value=cluster_dns) from None
        if not any(dns in net for net in mine["k3s_install_service_cidr"] if net.version == dns.version):
            first = mine["k3s_install_service_cidr"][0]
            clashes.append({
                "kind": "network", "variable": "k3s_install_cluster_dns", "value": str(dns),
                "conflicts_with": [{"network": str(first), "source": "k3s_install_service_cidr"}],
                "suggestion": str(first[10]),
                "msg": "k3s_install_cluster_dns=%s is outside k3s_install_service_cidr=%s. Fix: set "
                       "k3s_install_cluster_dns to an address inside it, e.g. %s" % (dns, service_cidr, first[10]),
            })
    return clashes


def _is_k3s(holder, names):
    """True when the holding process, or one of its ancestors, is K3s."""
    for proc in [holder] + list(holder.get("ancestors") or []):
        if proc.get("comm") in names or os.path.basename(proc.get("exe") or "") in names:
            return True
    return False


def check_ports(ports, sockets, holders, swarm, interfaces=(), k3s_names=K3S_PROCESS_NAMES, flannel_backend="vxlan"):
    """Clashes of K3s's ports with bound sockets (held by anything but K3s) and with Swarm's ports.

    ``holders`` maps a socket inode to {pid, comm, exe, ancestors: [{pid, comm, exe}]}; an inode of 0 is a kernel
    socket (a VXLAN or WireGuard device's), which is K3s's own when flannel's interface for it exists.
    Returns (clashes, port reports).
    """
    clashes, reports = [], []
    swarm_used = {(p["port"], p["proto"]): p["purpose"] for p in swarm_ports(swarm)}
    own_kernel = any(name in interfaces for name in FLANNEL_INTERFACES.get(flannel_backend, ()))
    for want in ports:
        key = (want["port"], want["proto"])
        bound = [s for s in sockets if (s["port"], s["proto"]) == key]
        report = dict(want, free=True, held_by_k3s=False, holders=[])
        others = []
        for sock in bound:
            holder = holders.get(sock["inode"]) if sock["inode"] else None
            if sock["inode"] == 0:
                desc = {"pid": None, "comm": "(kernel socket)", "address": sock["address"]}
                mine = own_kernel
            elif holder is None:
                desc = {"pid": None, "comm": "(unknown process)", "address": sock["address"]}
                mine = False
            else:
                desc = {"pid": holder.get("pid"), "comm": holder.get("comm"), "address": sock["address"]}
                mine = _is_k3s(holder, k3s_names)
            report["holders"].append(desc)
            if mine:
                report["held_by_k3s"] = True
            else:
                others.append(desc)
        if key in swarm_used:
            others.append({"pid": None, "comm": "Docker Swarm (%s)" % swarm_used[key], "address": None})
        report["free"] = not bound
        reports.append(report)
        if not others:
            continue
        who = ", ".join("%s%s" % (o["comm"], " (pid %s)" % o["pid"] if o["pid"] else "") for o in others)
        if want["variable"] == "k3s_install_flannel_backend":
            fix = ("set k3s_install_flannel_backend to another backend (vxlan uses 8472/udp, wireguard-native "
                   "51820-51821/udp, host-gw none) or free the port")
        elif want["variable"]:
            fix = "set %s to a free port or stop %s" % (want["variable"], who)
        else:
            fix = "stop or move %s: K3s cannot move its %s port" % (who, want["purpose"])
        clashes.append({
            "kind": "port", "variable": want["variable"], "value": "%d/%s" % key, "conflicts_with": others,
            "suggestion": None,
            "msg": "K3s needs %d/%s (%s), held by %s. Fix: %s"
                   % (want["port"], want["proto"], want["purpose"], who, fix),
        })
    return clashes, reports


def preflight(params, host, docker):
    """Every check, from what the readers found. ``host`` is :func:`read_host`'s result, ``docker`` (info,
    networks) or None when no engine runs here. Returns the module's result (without ``changed``)."""
    if params["flannel_backend"] not in FLANNEL_BACKENDS:
        raise InputError("flannel_backend=%r is not one of %s"
                         % (params["flannel_backend"], ", ".join(FLANNEL_BACKENDS)),
                         variable="k3s_install_flannel_backend")
    swarm = swarm_networks(*docker) if docker else {"active": False, "manager": False, "default_addr_pools": [],
                                                    "data_path_port": None, "networks": [], "engine": False}
    swarm.setdefault("engine", True)
    cluster_dns = params.get("cluster_dns") or default_cluster_dns(params["service_cidr"])
    ignore = list(params.get("ignore_interfaces") or K3S_INTERFACES)
    clashes = check_networks(params["cluster_cidr"], params["service_cidr"], cluster_dns, swarm, host["routes"],
                             ignore)
    ports = required_ports(params["role"], params["flannel_backend"], params["api_port"],
                           params["role"] == "server" and params["embedded_etcd"])
    port_clashes, port_reports = check_ports(ports, host["sockets"], host["holders"], swarm, host["interfaces"],
                                             tuple(params.get("k3s_process_names") or K3S_PROCESS_NAMES),
                                             params["flannel_backend"])
    clashes += port_clashes
    return {
        "clashes": clashes,
        "ok": not clashes,
        "k3s": {"role": params["role"], "cluster_cidr": params["cluster_cidr"],
                "service_cidr": params["service_cidr"], "cluster_dns": cluster_dns,
                "flannel_backend": params["flannel_backend"]},
        "swarm": dict(swarm, ports=swarm_ports(swarm)),
        "host_routes": host["routes"],
        "ports": port_reports,
    }


def failure_message(clashes):
    return ("K3s pre-flight found %d clash%s; nothing was installed. %s"
            % (len(clashes), "" if len(clashes) == 1 else "es", " | ".join(c["msg"] for c in clashes)))


# --- readers (I/O) ------------------------------------------------------------------------------------------------

def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _proc_info(proc_root, pid):
    info = {"pid": pid, "comm": _read(os.path.join(proc_root, str(pid), "comm")).strip(), "exe": None}
    try:
        info["exe"] = os.readlink(os.path.join(proc_root, str(pid), "exe"))
    except OSError:
        pass
    return info


def _ppid(proc_root, pid):
    stat = _read(os.path.join(proc_root, str(pid), "stat"))
    # the command name is in parentheses and may hold spaces: the fields after the last ')' are fixed
    rest = stat.rsplit(")", 1)[-1].split()
    return int(rest[1]) if len(rest) > 1 else 0


def socket_holders(inodes, proc_root="/proc"):
    """{inode: {pid, comm, exe, ancestors}} for the sockets of ``inodes``, from /proc/<pid>/fd."""
    wanted = {"socket:[%d]" % inode: inode for inode in inodes if inode}
    holders = {}
    try:
        pids = [int(name) for name in os.listdir(proc_root) if name.isdigit()]
    except OSError:
        return holders
    for pid in pids:
        fd_dir = os.path.join(proc_root, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            inode = wanted.get(link)
            if inode is None or inode in holders:
                continue
            holder = _proc_info(proc_root, pid)
            ancestors, parent, seen = [], _ppid(proc_root, pid), {pid}
            while parent > 1 and parent not in seen and len(ancestors) < 32:
                seen.add(parent)
                ancestors.append(_proc_info(proc_root, parent))
                parent = _ppid(proc_root, parent)
            holder["ancestors"] = ancestors
            holders[inode] = holder
    return holders


def read_host(proc_root="/proc", sys_class_net="/sys/class/net", ports=None):
    """Sockets, routes, interfaces and socket owners of this host (or of a captured tree under ``proc_root``)."""
    net = os.path.join(proc_root, "net")
    sockets = []
    for name, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        sockets += parse_proc_net(_read(os.path.join(net, name)), proto)
    if ports is not None:
        sockets = [s for s in sockets if (s["port"], s["proto"]) in ports]
    routes = parse_route(_read(os.path.join(net, "route"))) + parse_ipv6_route(_read(os.path.join(net, "ipv6_route")))
    try:
        interfaces = sorted(os.listdir(sys_class_net))
    except OSError:
        interfaces = []
    return {"sockets": sockets, "routes": routes, "interfaces": interfaces,
            "holders": socket_holders([s["inode"] for s in sockets], proc_root)}


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def read_docker(docker_host, timeout=10):
    """(``GET /info``, ``GET /networks``) from the engine at ``docker_host`` (unix:// or plain tcp://), or None when
    a unix socket is named and does not exist (no engine on this host)."""
    if docker_host.startswith("unix://"):
        socket_path = docker_host[len("unix://"):]
        if not os.path.exists(socket_path):
            return None

        def connect():
            return _UnixHTTPConnection(socket_path, timeout)
    elif docker_host.startswith("tcp://"):
        hostport = docker_host[len("tcp://"):].rstrip("/")

        def connect():
            return http.client.HTTPConnection(hostport, timeout=timeout)
    else:
        raise InputError("docker_host=%r: give unix:///path/to/docker.sock or tcp://HOST:PORT" % docker_host,
                         variable="k3s_install_docker_host")
    answers = []
    for url in ("/info", "/networks"):
        conn = connect()
        try:
            conn.request("GET", url)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError("The Docker Engine at %s did not answer GET %s (%s). Fix: start it, or set "
                           "k3s_install_docker_host to where it listens" % (docker_host, url, exc),
                           docker_host=docker_host, reason="unreachable") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise ApiError("The Docker Engine at %s answered GET %s with HTTP %d" % (docker_host, url, resp.status),
                           docker_host=docker_host, reason="http_%d" % resp.status)
        answers.append(json.loads(body))
    return answers[0], answers[1]
