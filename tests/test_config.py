"""etcd's flags, ETCD_* variables and YAML config file."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pyetcd.server.config import ConfigError, parse_args

SEED_FLAGS = [
    "--name", "etcd-3",
    "--listen-peer-urls", "https://10.4.7.202:2380",
    "--initial-advertise-peer-urls", "https://10.4.7.202:2380",
    "--listen-client-urls", "https://10.4.7.202:2379,http://127.0.0.1:2379",
    "--advertise-client-urls", "https://10.4.7.202:2379",
    "--initial-cluster-state", "new",
    "--initial-cluster-token", "etcd-cluster",
    "--initial-cluster", "etcd-1=https://10.4.7.200:2380,etcd-2=https://10.4.7.201:2380,"
                         "etcd-3=https://10.4.7.202:2380",
    "--client-cert-auth", "--trusted-ca-file=./ca.crt",
    "--cert-file=server.crt", "--key-file=server.key",
    "--peer-client-cert-auth", "--peer-trusted-ca-file=./ca.crt",
    "--peer-cert-file=./peer.crt", "--peer-key-file=./peer.key",
]


def test_seed_startup_flags_parse():
    cfg = parse_args(SEED_FLAGS, environ={})
    assert cfg.name == "etcd-3"
    assert cfg.listen_client_urls == ["https://10.4.7.202:2379", "http://127.0.0.1:2379"]
    assert cfg.client_cert_auth is True and cfg.peer_client_cert_auth is True
    assert cfg.trusted_ca_file == "./ca.crt" and cfg.peer_key_file == "./peer.key"
    assert cfg.initial_cluster_state == "new"
    assert cfg.data_dir_path == "etcd-3.etcd"


def test_defaults_are_etcds():
    cfg = parse_args([], environ={})
    assert cfg.name == "default" and cfg.data_dir_path == "default.etcd"
    assert cfg.listen_client_urls == ["http://localhost:2379"]
    assert cfg.quota_bytes == 2 * 1024**3
    assert cfg.max_request_bytes == 1572864 and cfg.max_txn_ops == 128
    assert cfg.heartbeat_interval == 100 and cfg.election_timeout == 1000
    assert cfg.snapshot_count == 100000


def test_single_dash_and_equals_forms():
    cfg = parse_args(["-name=x", "-data-dir", "/tmp/d", "--client-cert-auth=false"], environ={})
    assert (cfg.name, cfg.data_dir_path, cfg.client_cert_auth) == ("x", "/tmp/d", False)


def test_environment_variables_and_flag_precedence():
    env = {"ETCD_NAME": "from-env", "ETCD_QUOTA_BACKEND_BYTES": "1000000",
           "ETCD_CLIENT_CERT_AUTH": "true", "ETCD_INITIAL_CLUSTER_STATE": "existing"}
    cfg = parse_args(["--name", "from-flag"], environ=env)
    assert cfg.name == "from-flag"
    assert cfg.quota_backend_bytes == 1000000 and cfg.client_cert_auth is True
    assert cfg.initial_cluster_state == "existing"
    assert any("overrides environment variable ETCD_NAME" in w for w in cfg.warnings)


def test_unrecognized_environment_variable_is_warned():
    cfg = parse_args([], environ={"ETCD_NOPE": "1"})
    assert "unrecognized environment variable ETCD_NOPE" in cfg.warnings


def test_yaml_config_file(tmp_path):
    f = tmp_path / "etcd.conf.yml"
    f.write_text(
        "name: yaml-member\ndata-dir: /var/lib/x\nlisten-client-urls: http://127.0.0.1:1,http://127.0.0.1:2\n"
        "quota-backend-bytes: 4096\nclient-transport-security:\n  cert-file: /c.pem\n"
        "  client-cert-auth: true\npeer-transport-security:\n  key-file: /pk.pem\n")
    cfg = parse_args(["--config-file", str(f), "--name", "ignored"], environ={"ETCD_NAME": "ignored"})
    assert cfg.name == "yaml-member" and cfg.data_dir_path == "/var/lib/x"
    assert cfg.listen_client_urls == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert cfg.cert_file == "/c.pem" and cfg.client_cert_auth is True
    assert cfg.peer_key_file == "/pk.pem" and cfg.quota_backend_bytes == 4096


@pytest.mark.parametrize("argv,msg", [
    (["--no-such-flag"], "flag provided but not defined: -no-such-flag"),
    (["--name"], "flag needs an argument: -name"),
    (["--snapshot-count", "lots"], 'invalid value "lots" for flag -snapshot-count'),
    (["--initial-cluster-state", "old"], 'unexpected initial-cluster-state "old"'),
    (["--listen-client-urls", "127.0.0.1:2379"], "URL scheme must be http, https, unix or unixs"),
    (["--election-timeout", "100"], "should be at least as 5 times as --heartbeat-interval"),
])
def test_bad_flags_are_clear_errors(argv, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("(", r"\(")):
        parse_args(argv, environ={})


def test_unknown_flag_exits_2_with_message():
    r = subprocess.run([sys.executable, "-m", "pyetcd.main", "--bogus"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "flag provided but not defined: -bogus" in r.stderr
    assert "Traceback" not in r.stderr


def test_big_quota_warns():
    cfg = parse_args(["--quota-backend-bytes", str(9 * 1024**3)], environ={})
    assert any("exceeds the maximum recommended" in w for w in cfg.warnings)
