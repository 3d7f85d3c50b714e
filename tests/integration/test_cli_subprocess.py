"""The installed command line as a separate process: ``python -m mlconnector.cli``.

Runs the operator's first steps end to end with ``MLCONNECTOR_HOME`` in a temporary folder:
``init``, a connection pointing at both simulators (served on loopback by this test's event
loop), credentials from stdin and from the environment, and ``ping`` (passing, then failing).
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, create_plex_sandbox
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox

ACCOUNT = ShipStationAccount()


async def mlconnector(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run one command; return (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mlconnector.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCONNECTOR_")}
    return env | {
        "HOME": str(tmp_path),
        "MLCONNECTOR_HOME": str(tmp_path / "home"),
        "COLUMNS": "250",
    }


async def test_first_steps_as_a_subprocess(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    home = tmp_path / "home"
    code, out, err = await mlconnector(env, "init")
    assert code == 0, err
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "master.key").stat().st_mode) == 0o600
    assert (home / "mlconnector.toml").exists()

    clock = FakeClock()
    plex, shipstation = create_plex_sandbox(clock), create_shipstation_sandbox(clock)
    async with serve(plex.app) as plex_url, serve(shipstation.app) as ss_url:
        code, out, err = await mlconnector(
            env,
            "connections", "add", "acme", "--pcn", "340884",
            "--plex-url", plex_url, "--plex-datasource-url", plex_url,
            "--shipstation-v1-url", ss_url, "--shipstation-v2-url", ss_url,
        )  # fmt: skip
        assert code == 0, err
        # the next: hint is written the way this process was started
        assert "python -m mlconnector.cli credentials set plex --connection acme" in out
        with (home / "mlconnector.toml").open("a", encoding="utf-8") as handle:
            handle.write(
                "[connections.acme.mappings]\n"
                'warehouses = { "DET" = 200, "TOL" = 201, "LON" = 200 }\n'
            )
        code, out, err = await mlconnector(
            env,
            "credentials", "set", "plex", "--connection", "acme", "--stdin",
            stdin=f"consumer_key={DEFAULT_CONSUMER_KEY}\n",
        )  # fmt: skip
        assert code == 0, err
        secrets_env = env | {
            "MLCONNECTOR_SHIPSTATION_V1_KEY": ACCOUNT.api_key,
            "MLCONNECTOR_SHIPSTATION_V1_SECRET": ACCOUNT.api_secret,
            "MLCONNECTOR_SHIPSTATION_V2_KEY": str(ACCOUNT.v2_api_key),
        }
        code, out, err = await mlconnector(
            secrets_env, "credentials", "set", "shipstation", "--connection", "acme", "--from-env"
        )
        assert code == 0, err

        code, pinged, err = await mlconnector(env, "ping")
        assert code == 0, pinged + err
        assert "11 checks, 0 failed" in pinged

        # Break the V1 secret: ping now fails with exit status 1 and says what to do.
        broken = secrets_env | {"MLCONNECTOR_SHIPSTATION_V1_SECRET": "definitely-wrong-secret"}
        await mlconnector(
            broken, "credentials", "set", "shipstation", "--connection", "acme", "--from-env"
        )
        code, failed, err = await mlconnector(env, "ping", "--connection", "acme")
        assert code == 1
        assert "check the V1 API key and API secret" in failed

    everything = out + pinged + failed + err
    for secret in (DEFAULT_CONSUMER_KEY, ACCOUNT.api_secret, "definitely-wrong-secret"):
        assert secret not in everything
    on_disk = b"".join(p.read_bytes() for p in home.iterdir() if p.is_file())
    assert DEFAULT_CONSUMER_KEY.encode() not in on_disk
    assert ACCOUNT.api_secret.encode() not in on_disk
