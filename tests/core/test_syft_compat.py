"""Coming from syft-flwr: a syftbox transport gets a clear error; bootstrap keeps keys it does not own."""

from __future__ import annotations

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.ops.project_setup import bootstrap
from syft_flwr_gdrive.transport.registry import transport_class

SYFT_FLWR_PYPROJECT = """[project]
name = "diabetes"

[tool.flwr.app.components]
serverapp = "diabetes.server_app:app"
clientapp = "diabetes.client_app:app"

[tool.syft_flwr]
app_name = "ds@openmined.org_diabetes_1700000000"
datasites = ["do1@openmined.org"]
aggregator = "ds@openmined.org"
transport = "syftbox"
msg_timeout = 300
custom-note = "kept"

[tool.syft_flwr.extra]
flag = true
"""


def test_a_syftbox_transport_is_an_error_that_says_use_p2p(tmp_path):
    (tmp_path / "pyproject.toml").write_text(SYFT_FLWR_PYPROJECT)
    with pytest.raises(ConfigError, match=r'transport = "syftbox".*set transport = "p2p"'):
        ProjectConfig.load(tmp_path)
    with pytest.raises(ConfigError, match='set transport = "p2p"'):
        transport_class(Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_TRANSPORT": "syftbox"}).transport)


def test_bootstrap_keeps_the_keys_it_does_not_own(tmp_path):
    (tmp_path / "pyproject.toml").write_text(SYFT_FLWR_PYPROJECT)
    bootstrap(tmp_path, aggregator="ds@example.com", datasites=["a@example.com", "b@example.com"])
    cfg = ProjectConfig.load(tmp_path)
    assert cfg.transport == "p2p" and cfg.aggregator == "ds@example.com"
    assert cfg.datasites == ("a@example.com", "b@example.com")
    assert cfg.app_name == "ds@openmined.org_diabetes_1700000000" and cfg.msg_timeout == 300
    text = (tmp_path / "pyproject.toml").read_text()
    assert 'custom-note = "kept"' in text and "[tool.syft_flwr.extra]" in text and "flag = true" in text
    assert text.count("[tool.syft_flwr]") == 1
    bootstrap(tmp_path, aggregator="ds@example.com", datasites=["a@example.com"], app_name="study")
    assert ProjectConfig.load(tmp_path).app_name == "study"  # given explicitly: replaced


def test_bootstrap_refuses_to_drop_an_inline_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.syft_flwr]\nopts = { a = 1 }\n')
    with pytest.raises(ConfigError, match="inline tables"):
        bootstrap(tmp_path, aggregator="ds@example.com", datasites=["a@example.com"])
    assert "opts = { a = 1 }" in (tmp_path / "pyproject.toml").read_text()  # nothing lost
