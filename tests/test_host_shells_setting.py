"""QUETZAL_HOST_SHELLS: host URI -> the command that runs a shell command line there, validated at start."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from hosts import conf
from quetzal.env import env_commands


def test_it_reads_each_hosts_command_as_argv_words(monkeypatch):
    monkeypatch.setenv("QUETZAL_HOST_SHELLS", '{"qemu+tls://h1/system": "ssh -o BatchMode=yes \'root@h1\'"}')
    assert env_commands("QUETZAL_HOST_SHELLS") == {"qemu+tls://h1/system": ["ssh", "-o", "BatchMode=yes", "root@h1"]}
    monkeypatch.delenv("QUETZAL_HOST_SHELLS")
    assert env_commands("QUETZAL_HOST_SHELLS") == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ssh root@h1", "JSON object"),
        ('["ssh"]', "JSON object such as"),
        ('{"qemu+tls://h1/system": 3}', "JSON object such as"),
        ('{"qemu+tls://h1/system": "  "}', "names no command for qemu+tls://h1/system"),
    ],
)
def test_it_refuses_what_is_not_a_map_of_commands(monkeypatch, value, says):
    monkeypatch.setenv("QUETZAL_HOST_SHELLS", value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(says)):
        env_commands("QUETZAL_HOST_SHELLS")


def test_the_hosts_app_hands_the_setting_to_the_hypervisor_layer(settings):
    settings.HOST_SHELLS = {"qemu+tcp://10.0.0.9/system": ["ssh", "root@10.0.0.9"]}
    assert conf.host_shells() == {"qemu+tcp://10.0.0.9/system": ["ssh", "root@10.0.0.9"]}
    settings.HOST_SHELLS = {"qemu+tcp://10.0.0.9/system": []}
    with pytest.raises(ImproperlyConfigured):
        conf.host_shells()
