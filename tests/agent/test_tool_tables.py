"""Each OS's tool table: every tool is a catalogue tool, takes exactly the catalogue's arguments
model, and refuses arguments of another model (the binding is derived from the function's
annotation, so this is what keeps the two in step)."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from mspclaw.agent.tools import ToolContext, tool_registry, tool_table
from mspclaw.protocol.frames import OSName
from mspclaw.tools import get_tool
from mspclaw.tools.catalogue import CATALOGUE


@pytest.mark.parametrize("os_name", ["linux", "macos", "windows"])
def test_every_tool_takes_the_catalogues_arguments(os_name: OSName) -> None:
    table = tool_registry(os_name)
    assert table and set(table) <= set(CATALOGUE)
    for name, run in table.items():
        fn = inspect.unwrap(run)  # the function bind() wrapped
        assert fn.__name__ == name
        assert typing.get_type_hints(fn)["args"] is get_tool(name).args, (os_name, name)


class Wrong(BaseModel):
    x: int = 1


def test_a_table_refuses_other_arguments_and_unannotated_tools(tmp_path: Path) -> None:
    from mspclaw.agent.tools.linux import system_info

    table = tool_table(system_info)
    with pytest.raises(TypeError, match="expected NoArgs arguments, got Wrong"):
        table["system_info"](Wrong(), ToolContext(temp_roots=(tmp_path,)))

    def untyped(args, context):  # type: ignore[no-untyped-def]  # unannotated on purpose: the table refuses it
        return {}

    with pytest.raises(TypeError, match="must be annotated with a pydantic model"):
        tool_table(untyped)


def test_every_catalogue_tool_is_implemented_for_every_role_and_os_it_declares(tmp_path: Path) -> None:
    """No tool may be offered to a model, or named by a playbook, that nothing implements: each device
    tool on each OS it declares, and each site tool by a site agent with every integration configured."""
    from mspclaw.agent.site.config import (
        ADConfig,
        CupsConfig,
        EntraConfig,
        JamfConfig,
        OpenVPNConfig,
        SiteConfig,
    )
    from mspclaw.agent.site.registry import site_registry

    for os_name in ("linux", "macos", "windows"):
        table = tool_registry(os_name)
        missing = [s.name for s in CATALOGUE.values() if s.runs_on == "device" and os_name in s.os
                   and s.name not in table]
        assert not missing, f"declared for {os_name} but not implemented: {missing}"
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    config = SiteConfig()
    for section in (
        ADConfig(url="ldaps://dc1.example:636", base_dn="DC=example,DC=com", bind_user="svc", password_file=secret),
        EntraConfig(tenant_id="contoso.example", client_id="app", client_secret_file=secret),
        JamfConfig(url="https://acme.jamfcloud.com", client_id="app", client_secret_file=secret),
        CupsConfig(server="print01:631"),
        OpenVPNConfig(management="127.0.0.1:7505"),
    ):
        config = config.with_integration(section)
    tools, integrations = site_registry(config)
    try:
        missing = [s.name for s in CATALOGUE.values() if s.runs_on == "site" and s.name not in tools]
        assert not missing, f"site tools nothing implements: {missing}"
        assert set(tools) <= {s.name for s in CATALOGUE.values() if s.runs_on == "site"}
        for name, run in tools.items():
            fn = getattr(run, "__wrapped__", None)
            assert fn is not None, name
    finally:
        integrations.close()


def test_a_site_agent_offers_only_what_its_integrations_can_do(tmp_path: Path) -> None:
    from mspclaw.agent.site.config import CupsConfig, SiteConfig
    from mspclaw.agent.site.registry import site_registry

    tools, integrations = site_registry(SiteConfig().with_integration(CupsConfig(server="print01:631")))
    assert sorted(tools) == ["print_server_clear_queue", "print_server_queues"]
    integrations.close()
    tools, integrations = site_registry(SiteConfig())
    assert tools == {}
