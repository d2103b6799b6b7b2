"""--node-config / --run-config: Flower's key=value form (its own parser), .toml files, JSON."""

from __future__ import annotations

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.flower.userconfig import RunConfigRefused
from syft_flwr_gdrive.flower.userconfig import check_user_config
from syft_flwr_gdrive.flower.userconfig import merge_run_config
from syft_flwr_gdrive.flower.userconfig import parse_user_config
from syft_flwr_gdrive.flower.userconfig import run_config_of
from syft_flwr_gdrive.flower.userconfig import run_info


@pytest.mark.parametrize(
    "text, expected",
    [
        ("partition-id=0 num-partitions=2", {"partition-id": 0, "num-partitions": 2}),
        ('data-path="/data/my file.csv" lr=0.1 on=true', {"data-path": "/data/my file.csv", "lr": 0.1, "on": True}),
        ('{"partition-id": 1, "num-partitions": 3}', {"partition-id": 1, "num-partitions": 3}),
        ('{"a": {"b": 1}}', {"a.b": 1}),  # nested JSON is flattened the way Flower flattens TOML tables
        ("", {}),
        (None, {}),
    ],
)
def test_both_forms_parse(text, expected):
    assert parse_user_config(text, option="--node-config") == expected


def test_a_toml_file(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('partition-id = 2\ndata-path = "/d.csv"\n')
    assert parse_user_config(str(path), option="--node-config") == {"partition-id": 2, "data-path": "/d.csv"}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("data-path=/data/a.csv", "strings quoted"),  # unquoted string: Flower's parser refuses; we say how to fix
        ("{not json", "not valid JSON"),
        ("just-a-word", "no key=value pair"),
        ('{"a": [1, 2]}', "needs to be of type"),
    ],
)
def test_bad_input_names_the_fix(text, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_user_config(text, option="--node-config")


def test_run_info_round_trip_and_validation():
    assert run_config_of(run_info({"x": 1})) == {"x": 1}
    assert run_config_of(None) is None and run_config_of({"app": {}}) is None
    with pytest.raises(ConfigError):
        run_config_of({"config": {"x": {"nested": 1}}})
    with pytest.raises(ConfigError):
        check_user_config({"k": "v" * 20_000}, what="run config")


DECLARED = {"lr": 0.1, "epochs": 1, "name": "a", "on": True}


def test_the_servers_run_config_overrides_only_declared_keys_of_their_types():
    assert merge_run_config(DECLARED, {}) == DECLARED
    assert merge_run_config(DECLARED, {"lr": 0.5, "name": "b"}) == {**DECLARED, "lr": 0.5, "name": "b"}
    assert merge_run_config(DECLARED, {"lr": 1})["lr"] == 1  # an int where a float is declared: TOML's "lr=1"


@pytest.mark.parametrize(
    "sent, says",
    [
        ({"upload-to": "https://x"}, "sets 'upload-to', which this project does not declare"),
        ({"lr": "0.5"}, "'lr' (a str where a float is declared)"),
        ({"epochs": 1.5}, "'epochs' (a float where a int is declared)"),
        ({"epochs": True}, "'epochs' (a bool where a int is declared)"),
        ({"on": 1}, "'on' (a int where a bool is declared)"),
    ],
)
def test_an_undeclared_key_or_a_value_of_another_type_is_refused_naming_it_and_the_fix(sent, says):
    with pytest.raises(RunConfigRefused, match="Fix: ") as refused:
        merge_run_config(DECLARED, sent)
    assert says in str(refused.value)
    peer_text = refused.value.for_peer
    assert next(iter(sent)) in peer_text and "0.1" not in peer_text  # the key, never a local value


def test_a_malformed_run_config_is_refused_too():
    with pytest.raises(RunConfigRefused):
        run_config_of({"config": {"x": {"nested": 1}}})
