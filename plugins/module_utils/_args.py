# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option specs shared by the collection's modules; each has a doc fragment of the same name.

``CONNECTION_SPEC`` is documented by ``sophia_ai.platform._connection`` (plugins/doc_fragments/_connection.py):
change both together. The names, aliases and environment variables are kubernetes.core's where they overlap,
so ``module_defaults`` written for ``kubernetes.core.k8s`` carry over.
"""

from __future__ import annotations

import copy

from ansible.module_utils.basic import env_fallback

CONNECTION_SPEC = {
    "kubeconfig": {"type": "path", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"], "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
    "client_cert": {"type": "path", "aliases": ["cert_file"], "fallback": (env_fallback, ["K8S_AUTH_CERT_FILE"])},
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": False,
                   "fallback": (env_fallback, ["K8S_AUTH_KEY_FILE"])},
    "proxy": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_PROXY"])},
    "request_timeout": {"type": "float", "default": 30},
}


def connection_spec():
    """A copy of CONNECTION_SPEC that a module may extend."""
    return copy.deepcopy(CONNECTION_SPEC)
