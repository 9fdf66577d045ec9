"""TEMPORARY shim: cluster.json lives in nodes/common/clusterfile.py now.

Kept only until faults/ and the tests stop importing this path; the lead
removes it. Import from ``nodes.common.clusterfile`` instead.
"""

from nodes.common.clusterfile import (
    ClusterConfig,
    ConfigError,
    NodeConfig,
    ProxyConfig,
    load_cluster,
    parse_cluster,
)
from nodes.common.options import READ_MODES

__all__ = ["READ_MODES", "ClusterConfig", "ConfigError", "NodeConfig", "ProxyConfig",
           "load_cluster", "parse_cluster"]
