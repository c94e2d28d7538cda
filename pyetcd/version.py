"""Version strings.  ``ETCD_VERSION`` is the etcd release whose API pyetcd
implements and reports in Maintenance.Status (Kubernetes enables features by
it, so it must be a real etcd version)."""
import platform

__version__ = "0.1.0"
ETCD_VERSION = "3.5.13"
API_VERSION = "3.5"


def describe() -> str:
    return (f"pyetcd Version: {__version__}\netcd API Version: {ETCD_VERSION}\n"
            f"Python Version: {platform.python_version()}\nOS/Arch: {platform.system().lower()}/{platform.machine()}")
