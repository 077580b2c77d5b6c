# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of ``DOCKER_CONNECTION_SPEC`` (plugins/module_utils/_docker_client.py): a Docker Engine."""

from __future__ import annotations


class ModuleDocFragment:
    """Names, aliases and environment variables follow community.docker's C(docker) fragment where they overlap."""

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine of a Swarm manager, for example V(unix:///var/run/docker.sock),
        V(tcp://10.0.0.5:2376) or V(ssh://admin@10.0.0.5).
      - Defaults to the E(DOCKER_HOST) environment variable, else V(unix:///var/run/docker.sock).
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  tls:
    description:
      - Connect with TLS (without verifying the engine's certificate unless O(validate_certs=true)).
      - Can also be set with the E(DOCKER_TLS) environment variable.
    type: bool
    default: false
  validate_certs:
    description:
      - Connect with TLS and verify the engine's certificate against O(ca_path) (or the system's CAs).
      - Can also be set with the E(DOCKER_TLS_VERIFY) environment variable.
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description:
      - PEM file of the CA that signed the engine's certificate.
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description:
      - PEM file of the client certificate the engine requires (with O(client_key)).
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - PEM file of the key of O(client_cert).
    type: path
    aliases: [tls_client_key, key_path]
  timeout:
    description:
      - Seconds to wait for each API request.
      - Can also be set with the E(DOCKER_TIMEOUT) environment variable.
    type: int
    default: 60
"""
