"""Server configuration from etcd's flags, ETCD_* variables and YAML file.

The rules are etcd's (``server/etcdmain/config.go``):
- flags may be written ``--name v``, ``--name=v``, ``-name v`` or ``-name=v``;
  a boolean flag alone means true;
- every flag has an environment variable: ``ETCD_`` + the flag name upper-cased
  with ``-`` turned into ``_`` (``--initial-cluster`` -> ``ETCD_INITIAL_CLUSTER``);
  a flag given on the command line wins over its variable;
- ``--config-file`` (or ``ETCD_CONFIG_FILE``) loads etcd's YAML form, whose
  keys are the flag names; with a config file, other flags and variables are
  ignored, as in etcd;
- an unknown flag is an error (exit code 2) naming the flag.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import yaml

# name -> (type, default).  Types: str, int, bool, float, "urls", "list".
FLAGS: dict[str, tuple[object, object]] = {
    # member
    "name": (str, "default"),
    "data-dir": (str, ""),
    "wal-dir": (str, ""),
    "snapshot-count": (int, 100000),
    "heartbeat-interval": (int, 100),
    "election-timeout": (int, 1000),
    "initial-election-tick-advance": (bool, True),
    "listen-peer-urls": ("urls", "http://localhost:2380"),
    "listen-client-urls": ("urls", "http://localhost:2379"),
    "listen-metrics-urls": ("urls", ""),
    "max-snapshots": (int, 5),
    "max-wals": (int, 5),
    "quota-backend-bytes": (int, 0),
    "backend-batch-limit": (int, 0),
    "backend-batch-interval": (str, ""),
    "backend-bbolt-freelist-type": (str, "map"),
    "max-txn-ops": (int, 128),
    "max-request-bytes": (int, 1572864),
    "grpc-keepalive-min-time": (str, "5s"),
    "grpc-keepalive-interval": (str, "2h"),
    "grpc-keepalive-timeout": (str, "20s"),
    "socket-reuse-port": (bool, False),
    "socket-reuse-address": (bool, False),
    "unsafe-no-fsync": (bool, False),
    # clustering
    "initial-advertise-peer-urls": ("urls", "http://localhost:2380"),
    "initial-cluster": (str, ""),
    "initial-cluster-state": (str, "new"),
    "initial-cluster-token": (str, "etcd-cluster"),
    "advertise-client-urls": ("urls", "http://localhost:2379"),
    "discovery": (str, ""),
    "discovery-fallback": (str, "proxy"),
    "discovery-proxy": (str, ""),
    "discovery-srv": (str, ""),
    "discovery-srv-name": (str, ""),
    "strict-reconfig-check": (bool, True),
    "pre-vote": (bool, True),
    "auto-compaction-retention": (str, "0"),
    "auto-compaction-mode": (str, "periodic"),
    "enable-v2": (bool, False),
    "enable-pprof": (bool, False),
    "cors": (str, ""),
    "host-whitelist": (str, "*"),
    # security
    "cert-file": (str, ""),
    "key-file": (str, ""),
    "client-cert-auth": (bool, False),
    "client-crl-file": (str, ""),
    "client-cert-allowed-hostname": (str, ""),
    "trusted-ca-file": (str, ""),
    "auto-tls": (bool, False),
    "self-signed-cert-validity": (int, 1),
    "peer-cert-file": (str, ""),
    "peer-key-file": (str, ""),
    "peer-client-cert-auth": (bool, False),
    "peer-trusted-ca-file": (str, ""),
    "peer-auto-tls": (bool, False),
    "peer-cert-allowed-cn": (str, ""),
    "peer-cert-allowed-hostname": (str, ""),
    "peer-crl-file": (str, ""),
    "cipher-suites": (str, ""),
    "tls-min-version": (str, "TLS1.2"),
    "tls-max-version": (str, ""),
    # auth
    "auth-token": (str, "simple"),
    "bcrypt-cost": (int, 10),
    "auth-token-ttl": (int, 300),
    # logging and metrics
    "logger": (str, "zap"),
    "log-level": (str, "info"),
    "log-outputs": (str, "default"),
    "enable-log-rotation": (bool, False),
    "log-rotation-config-json": (str, ""),
    "metrics": (str, "basic"),
    "force-new-cluster": (bool, False),
    # pyetcd additions
    "frontends": (int, 0),   # gRPC front-end processes (api/relay.py); 0: one process
    "watch-progress-notify-interval": (str, "10m"),
    "experimental-watch-progress-notify-interval": (str, "10m"),
    "experimental-compaction-batch-limit": (int, 1000),
    "experimental-enable-lease-checkpoint": (bool, False),
    "experimental-initial-corrupt-check": (bool, False),
    "experimental-corrupt-check-time": (str, "0s"),
    "experimental-snapshot-catchup-entries": (int, 5000),
    "experimental-warning-apply-duration": (str, "100ms"),
    "config-file": (str, ""),
}

BOOL_TRUE = {"1", "t", "true", "TRUE", "True", "yes", "on"}
BOOL_FALSE = {"0", "f", "false", "FALSE", "False", "no", "off", ""}


class ConfigError(Exception):
    pass


def _convert(name: str, raw) -> object:
    typ = FLAGS[name][0]
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        s = str(raw)
        if s in BOOL_TRUE:
            return True
        if s in BOOL_FALSE:
            return False
        raise ConfigError(f'invalid boolean value "{s}" for -{name}')
    if typ is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f'invalid value "{raw}" for flag -{name}: parse error') from None
    if typ == "urls":
        if isinstance(raw, list):
            return [u.strip() for u in raw if u.strip()]
        return [u.strip() for u in str(raw).split(",") if u.strip()]
    return "" if raw is None else str(raw)


@dataclass
class Config:
    values: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def __getattr__(self, item: str):
        key = item.replace("_", "-")
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(item) from None

    @property
    def data_dir_path(self) -> str:
        return self.values["data-dir"] or f"{self.values['name']}.etcd"

    @property
    def quota_bytes(self) -> int:
        q = self.values["quota-backend-bytes"]
        return q if q > 0 else 2 * 1024**3


def parse_args(argv: list[str], environ: dict | None = None) -> Config:
    environ = os.environ if environ is None else environ
    explicit: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help", "-help"):
            raise SystemExit(print_usage())
        if arg in ("--version", "-version"):
            from pyetcd.version import describe
            print(describe())
            raise SystemExit(0)
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ConfigError(f"'{arg}' is not a valid flag")
        body = arg.lstrip("-")
        name, eq, value = body.partition("=")
        if name not in FLAGS:
            raise ConfigError(f"flag provided but not defined: -{name}")
        if not eq:
            if FLAGS[name][0] is bool:
                value = "true"
            else:
                i += 1
                if i >= len(argv):
                    raise ConfigError(f"flag needs an argument: -{name}")
                value = argv[i]
        explicit[name] = _convert(name, value)
        i += 1
    cfg = Config()
    config_file = explicit.get("config-file") or environ.get("ETCD_CONFIG_FILE", "")
    if config_file:
        return _from_yaml(str(config_file))
    for name, (_, default) in FLAGS.items():
        cfg.values[name] = _convert(name, default)
    for name in FLAGS:
        env = "ETCD_" + name.upper().replace("-", "_")
        if env in environ:
            if name in explicit:
                cfg.warnings.append(f"flag --{name} overrides environment variable {env}")
            else:
                cfg.values[name] = _convert(name, environ[env])
    known = {"ETCD_" + n.upper().replace("-", "_") for n in FLAGS}
    for env in environ:
        if env.startswith("ETCD_") and env not in known and env not in ("ETCD_UNSUPPORTED_ARCH",):
            cfg.warnings.append(f"unrecognized environment variable {env}")
    cfg.values.update(explicit)
    _validate(cfg)
    return cfg


def _from_yaml(path: str) -> Config:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"cannot load config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"error unmarshaling config file {path}: {exc}") from None
    cfg = Config()
    for name, (_, default) in FLAGS.items():
        cfg.values[name] = _convert(name, default)
    for key, value in data.items():
        if key in ("client-transport-security", "peer-transport-security") and isinstance(value, dict):
            prefix = "" if key.startswith("client") else "peer-"
            for sub, v in value.items():
                flag = prefix + sub
                if flag in FLAGS:
                    cfg.values[flag] = _convert(flag, v)
            continue
        if key not in FLAGS:
            cfg.warnings.append(f"config file key {key!r} is not known to pyetcd; ignored")
            continue
        cfg.values[key] = _convert(key, value)
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    v = cfg.values
    if v["initial-cluster-state"] not in ("new", "existing"):
        raise ConfigError(f'unexpected initial-cluster-state "{v["initial-cluster-state"]}"')
    if v["heartbeat-interval"] <= 0 or v["election-timeout"] < 5 * v["heartbeat-interval"]:
        raise ConfigError("--election-timeout[%dms] should be at least as 5 times as "
                          "--heartbeat-interval[%dms]" % (v["election-timeout"], v["heartbeat-interval"]))
    if v["frontends"] < 0:
        raise ConfigError(f'invalid value "{v["frontends"]}" for flag -frontends: must be >= 0')
    if v["quota-backend-bytes"] > 8 * 1024**3:
        cfg.warnings.append(
            f"quota-backend-bytes {v['quota-backend-bytes']} exceeds the maximum recommended "
            f"8 GiB; the backend may perform poorly")
    for name in ("listen-client-urls", "listen-peer-urls", "advertise-client-urls",
                 "initial-advertise-peer-urls"):
        for url in v[name]:
            if "://" not in url:
                raise ConfigError(f'URL scheme must be http, https, unix or unixs: {url}')


def print_usage() -> int:
    print("Usage:\n\n  pyetcd [flags]\n\nStart a pyetcd (etcd-compatible) server.\n\nFlags (etcd's):")
    for name, (typ, default) in FLAGS.items():
        t = typ if isinstance(typ, str) else typ.__name__
        print(f"  --{name} <{t}>   default: {default!r}")
    return 0


def fail(msg: str) -> None:
    print(f"pyetcd: {msg}", file=sys.stderr)
    print("Try 'pyetcd --help' for the list of flags.", file=sys.stderr)
    raise SystemExit(2)
